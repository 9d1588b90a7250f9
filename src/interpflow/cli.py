"""`interpflow <stage> --arg value ...`: every stage of the DAG as a sub-command.

Options mirror each stage function's parameters (`--model-cfg` for `model_cfg`); dict-valued
options take JSON, list-valued ones take several values. Snakemake rules call these; you can
too, to run one stage by hand.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import typing

from interpflow.errors import InterpflowError
from interpflow.report.leaderboard import leaderboard
from interpflow.stages import activations, data, detect, evaluate, judge, prepare, steer, train

STAGES = {
    "prepare-model": prepare.prepare,
    "concepts": data.concepts,
    "train-data": data.train_data,
    "eval-data": data.eval_data,
    "cache-activations": activations.cache_activations,
    "train": train.train,
    "detect": detect.detect,
    "evaluate-detection": evaluate.evaluate_detection,
    "steer": steer.steer,
    "judge": judge.judge,
    "evaluate-steering": evaluate.evaluate_steering,
    "leaderboard": leaderboard,
}


def _add_option(parser: argparse.ArgumentParser, name: str, param: inspect.Parameter, hint) -> None:
    flag = "--" + name.replace("_", "-")
    required = param.default is inspect.Parameter.empty
    origin = typing.get_origin(hint)
    if hint is dict:
        parser.add_argument(flag, type=json.loads, required=required, help="JSON object")
    elif origin is list:
        parser.add_argument(flag, nargs="*", required=required, default=[] if not required else None)
    elif hint in (int, float):
        parser.add_argument(flag, type=hint, required=required)
    else:
        parser.add_argument(flag, required=required, default=None if required else param.default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interpflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="stage", required=True)
    for stage, function in STAGES.items():
        sub = commands.add_parser(stage, help=(function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else None)
        hints = typing.get_type_hints(function)
        for name, param in inspect.signature(function).parameters.items():
            _add_option(sub, name, param, hints.get(name))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    function = STAGES[args.pop("stage")]
    try:
        function(**args)
    except InterpflowError as err:
        print(f"interpflow: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
