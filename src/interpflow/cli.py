"""`interpflow <stage> --arg value ...`: every stage of the DAG as a sub-command, plus `wall-times`
(where a finished run's time went, from its Snakemake benchmark files) and `install-profile`
(a profile of profiles/ where `snakemake --profile <name>` finds it).

Options mirror each stage function's parameters (`--model-cfg` for `model_cfg`); dict-valued
options take JSON, list-valued ones take several values. Snakemake rules call these; you can
too, to run one stage by hand.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import signal
import sys
import types
import typing

from interpflow.allocator import reuse_freed_memory
from interpflow.errors import InterpflowError

# sub-command -> "module:function"; imported only when that stage runs (torch and transformers
# take seconds to import, and most jobs need neither)
STAGES = {
    "run-config": "interpflow.config:run_config",
    "prepare-model": "interpflow.stages.prepare:prepare",
    "concepts": "interpflow.stages.data:concepts",
    "train-data": "interpflow.stages.data:train_data",
    "eval-data": "interpflow.stages.data:eval_data",
    "imbalance-pool": "interpflow.stages.data:imbalance_pool",
    "cache-activations": "interpflow.stages.activations:cache_activations",
    "pairs": "interpflow.stages.pairs:pairs",
    "sae": "interpflow.sae.stage:sae",
    "train": "interpflow.stages.train:train",
    "detect": "interpflow.stages.detect:detect",
    "evaluate-detection": "interpflow.stages.evaluate:evaluate_detection",
    "steer": "interpflow.stages.steer:steer",
    "judge": "interpflow.stages.judge:judge",
    "evaluate-steering": "interpflow.stages.evaluate:evaluate_steering",
    "saebench-core": "interpflow.saebench.core:core",
    "saebench-sparse-probing": "interpflow.saebench.sparse_probing:sparse_probing",
    "saebench-tpp": "interpflow.saebench.tpp:tpp",
    "saebench-scr": "interpflow.saebench.scr:scr",
    "saebench-autointerp": "interpflow.saebench.autointerp:autointerp",
    "saebench-texts": "interpflow.saebench.two_attribute:saebench_texts",
    "saebench-first-letter": "interpflow.saebench.first_letter:first_letter_acts",
    "saebench-absorption": "interpflow.saebench.absorption:absorption",
    "saebench-ravel-prompts": "interpflow.saebench.ravel:ravel_prompts",
    "saebench-ravel": "interpflow.saebench.ravel:ravel",
    "saebench-unlearning-questions": "interpflow.saebench.unlearning_mcq:unlearning_questions",
    "saebench-unlearning-corpus": "interpflow.saebench.unlearning_mcq:unlearning_corpus",
    "saebench-unlearning": "interpflow.saebench.unlearning:unlearning",
    "saebench-leaderboard": "interpflow.saebench.leaderboard:saebench_leaderboard",
    "saebench-eval-results": "interpflow.saebench.eval_results:saebench_eval_results",
    "circuit-compile": "interpflow.circuits.stages:circuit_compile",
    "circuit-siit": "interpflow.circuits.stages:circuit_siit",
    "circuit-discover": "interpflow.circuits.stages:circuit_discover",
    "circuit-leaderboard": "interpflow.circuits.leaderboard:circuit_leaderboard",
    "leaderboard": "interpflow.report.leaderboard:leaderboard",
    "wall-times": "interpflow.report.wall_times:wall_times",
    "install-profile": "interpflow.profiles:install_profile",
}


def stage_function(stage: str):
    module, _, name = STAGES[stage].partition(":")
    return getattr(importlib.import_module(module), name)


def _without_none(hint):
    """`X | None` -> X (an optional option is simply not required)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return hint


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg} at character {err.pos}): {text[:80]!r}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object {{...}}, got {text[:80]!r}")
    return value


def _help(name: str, hint, required: bool, default) -> str:
    """What an option takes, from its name and type (stage functions name their files by role)."""
    if hint is dict:
        what = "settings as a JSON object, e.g. '{\"name\": \"diffmean\"}'" if name.endswith("cfg") else "a JSON object"
    elif typing.get_origin(hint) is list:
        what = "one or more paths" if name not in ("pairs", "methods") else "one or more values"
    elif hint is int:
        what = "an integer"
    elif hint is float:
        what = "a number"
    elif name == "out" or name.startswith("out_"):
        what = "output path (written atomically; its folder is created)"
    else:
        what = "a path or a name"
    return what + ("" if required or default is None else f" (default {default})")


def _add_option(parser: argparse.ArgumentParser, name: str, param: inspect.Parameter, hint) -> None:
    if param.kind is inspect.Parameter.POSITIONAL_ONLY:  # `install-profile slurm`
        parser.add_argument(name, help=_help(name, hint, True, None))
        return
    flag = "--" + name.replace("_", "-")
    if hint is bool:
        parser.add_argument(flag, action="store_true", help="a flag (off unless given)")
        return
    required = param.default is inspect.Parameter.empty
    default = None if required else param.default
    hint = _without_none(hint)
    origin = typing.get_origin(hint)
    text = _help(name, hint, required, default)
    if hint is dict:
        parser.add_argument(flag, type=_json_object, required=required, default=default, help=text)
    elif origin is list:
        parser.add_argument(flag, nargs="*", required=required, default=[] if not required else None, help=text)
    elif hint in (int, float):
        parser.add_argument(flag, type=hint, required=required, default=default, help=text)
    else:
        parser.add_argument(flag, required=required, default=default, help=text)


def stage_parser(stage: str, function) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"interpflow {stage}", description=function.__doc__)
    hints = typing.get_type_hints(function)
    for name, param in inspect.signature(function).parameters.items():
        _add_option(parser, name, param, hints.get(name))
    return parser


def _take_threads(argv: list[str]) -> list[str]:
    """`--threads N` (Snakemake's {threads}) caps torch's threads; it must be set before torch loads,
    or two jobs on two cores each spin two threads and run several times slower."""
    if "--threads" not in argv:
        return argv
    at = argv.index("--threads")
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = argv[at + 1]
    return argv[:at] + argv[at + 2 :]


def _exit_on_sigterm(signum, _frame) -> None:
    """SLURM and Snakemake end a job with SIGTERM: leave through Python's exit path, so every
    `atomic_path` still open deletes its temporary file instead of leaving it beside the artifact."""
    raise SystemExit(128 + signum)


def _unreadable(err: Exception) -> str | None:
    """One line for an input file that is missing or not what a stage expects; None for other errors."""
    if isinstance(err, FileNotFoundError):
        return (f"missing input {err.filename or str(err)!r}: it is an earlier stage's output (run the workflow up "
                "to it, `snakemake <that file>`) or a path to check")
    kind = type(err).__name__
    if kind in ("ArrowInvalid", "ArrowIOError", "SafetensorError", "HeaderTooLarge", "JSONDecodeError",
                "UnicodeDecodeError") or (isinstance(err, OSError) and err.errno is None):
        # Deleting it would not do: Snakemake 9 rebuilds a missing intermediate file only when
        # something after it must run. --forcerun rebuilds it and everything made from it.
        return (f"an input file is damaged or of the wrong kind ({kind}: {str(err).splitlines()[0][:200]}); rebuild it "
                "and what was made from it: your snakemake command again with `--forcerun <that file>`")
    return None


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    reuse_freed_memory()
    argv = _take_threads(sys.argv[1:] if argv is None else list(argv))
    if argv and argv[0] == "--version":
        print(f"interpflow {_version()}")
        return 0
    if not argv or argv[0] not in STAGES:
        asked = bool(argv) and argv[0] in ("-h", "--help")
        unknown = "" if asked or not argv else f"interpflow: unknown stage {argv[0]!r}\n\n"
        print(f"{unknown}usage: interpflow <stage> [--help] | --version\n\nstages: {', '.join(STAGES)}\n\n{__doc__}",
              file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    function = stage_function(argv[0])
    args = vars(stage_parser(argv[0], function).parse_args(argv[1:]))
    positional = [args.pop(name) for name, param in inspect.signature(function).parameters.items()
                  if param.kind is inspect.Parameter.POSITIONAL_ONLY]
    try:
        function(*positional, **args)
    except InterpflowError as err:
        print(f"interpflow: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a short line for bad input files, the traceback for bugs
        message = _unreadable(err)
        if message is None:
            raise
        print(f"interpflow {argv[0]}: error: {message}", file=sys.stderr)
        return 2
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("interpflow")
    except metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
