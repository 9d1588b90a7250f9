"""Plan the 16,000-concept experiment (`snakemake -n`) and check the job count against the shard arithmetic.

    python benchmarks/plan_scale.py                  # 16,000 concepts, config/experiment/scale_16k.yaml
    python benchmarks/plan_scale.py --concepts 2000 --profile profiles/local
    python benchmarks/plan_scale.py --replan-shard s0042   # then: change one shard's data, plan again

Writes a concept file of generated names into a scratch working directory, plans the DAG through
the given profile (nothing runs, nothing is submitted), and prints the planned job count, the count
the shard arithmetic predicts, and the seconds the plan took. Exits non-zero when they differ.

With --replan-shard, it then pretends the whole plan ran (every output created empty, then
`snakemake --touch` so Snakemake records them as up to date), rewrites that shard's training data
with new content, plans again, and checks that every planned job belongs to that shard or is a
per-(model, layer, method) summary downstream of it (evaluations, leaderboard).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from interpflow.config import compose
from interpflow.methods import method_class

REPO = Path(__file__).resolve().parents[1]


def expected_jobs(cfg: dict, n_concepts: int) -> Counter:
    """Jobs per rule: per-shard stages x shards, per-(model, layer, method, shard) stages x all four."""
    shards = math.ceil(n_concepts / cfg["concepts"]["shard_size"])
    models = list(cfg["models"])
    layers = sum(len(cfg["models"][m]["layers"]) for m in models)  # (model, layer) pairs
    infos = [method_class(m["name"]) for m in cfg["methods"].values()]
    trains = sum(i.trains() for i in infos)
    detects = sum(i.detects for i in infos)
    steers = sum(i.steers for i in infos)
    jobs = Counter(prepare_model=len(models), concepts=1, train_data=shards, eval_data=shards, leaderboard=1, all=1)
    if any(i.needs == "activations" for i in infos):
        jobs["cache_activations"] = layers * 2 * shards  # splits: train, latent_eval
    if any(i.uses_pairs for i in infos):
        jobs["pairs"] = len(models) * shards
    if any(i.uses_sae for i in infos):
        jobs["sae"] = layers
    jobs.update(train=layers * trains * shards, detect=layers * detects * shards, evaluate_detection=layers * detects,
                steer=layers * steers * shards, judge=layers * steers * shards, evaluate_steering=layers * steers)
    return +jobs


def planned_jobs(output: str) -> Counter:
    """The 'Job stats' table of a dry run: rule -> count."""
    table = output[output.index("Job stats:"):]
    return Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M) if rule != "total"})


SUMMARY_RULES = {"evaluate_detection", "evaluate_steering", "leaderboard", "all"}


def job_blocks(output: str) -> list[tuple[str, dict, list[str]]]:
    """(rule, wildcards, outputs) of every job printed by a dry run."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not match:
            continue
        found = re.search(r"^\s*wildcards: (.*)$", block, re.M)
        wildcards = dict(p.split("=", 1) for p in found.group(1).split(", ")) if found else {}
        outputs = re.search(r"^\s*output: (.*)$", block, re.M)
        jobs.append((match.group(1), wildcards, outputs.group(1).split(", ") if outputs else []))
    return jobs


def replan_check(snakemake, workdir: Path, env: dict, run_name: str, shard: str) -> int:
    full = subprocess.run(snakemake("-n"), capture_output=True, text=True, env=env)
    jobs = job_blocks(full.stdout + full.stderr)
    for _, _, outputs in jobs:
        for output in outputs:
            (workdir / output).parent.mkdir(parents=True, exist_ok=True)
            (workdir / output).touch()
    touched = subprocess.run(snakemake("--touch", "--cores", "1", "--quiet", "all"), capture_output=True, text=True, env=env)
    if touched.returncode != 0:
        print(touched.stdout[-3000:], touched.stderr[-3000:], sep="\n")
        return touched.returncode
    data = workdir / "results" / run_name / "data" / "train" / f"{shard}.parquet"
    if not data.exists():
        print(f"{data} is not an output of this plan: choose a shard between s0000 and the last one")
        return 2
    data.write_bytes(b"new training data for " + shard.encode())
    start = time.perf_counter()
    again = subprocess.run(snakemake("-n"), capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    replanned = job_blocks(again.stdout + again.stderr)
    strays = [(rule, w) for rule, w, _ in replanned if w.get("shard", shard) != shard or
              ("shard" not in w and rule not in SUMMARY_RULES and rule != "train_data")]
    per_rule = Counter(rule for rule, _, _ in replanned)
    print(f"after rewriting {shard}'s training data: {len(replanned)} of {len(jobs)} jobs re-planned in {seconds:.1f} s: "
          + ", ".join(f"{rule} {n}" for rule, n in sorted(per_rule.items())))
    print("jobs of other shards re-planned: " + (", ".join(f"{r} {w}" for r, w in strays[:5]) if strays else "none"))
    return 1 if strays or not replanned else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", type=int, default=16_000, help="number of concepts to plan")
    parser.add_argument("--experiment", default="scale_16k", help="config/experiment/<name>.yaml")
    parser.add_argument("--shard-size", type=int, help="concepts per shard (default: the experiment's)")
    parser.add_argument("--profile", default="profiles/slurm", help="Snakemake profile (relative to the repository)")
    parser.add_argument("--workdir", help="scratch working directory (default: a new temporary one)")
    parser.add_argument("--replan-shard", help="then check that rewriting this shard's training data re-plans only its jobs")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="plan_scale_"))
    workdir.mkdir(parents=True, exist_ok=True)
    concept_file = workdir / "concepts.txt"
    concept_file.write_text("".join(f"synthetic concept number {i:05d}\n" for i in range(args.concepts)))
    overrides = [f"experiment={args.experiment}", "concepts.source=file", f"concepts.path={concept_file}"]
    if args.shard_size:
        overrides.append(f"concepts.shard_size={args.shard_size}")
    cfg = compose(REPO / "config", overrides)

    # The plan never calls an API; the generator and judge only check that a key is set.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "unused-by-a-dry-run"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    def snakemake(*options: str) -> list[str]:  # --config last: it takes every word after it
        return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
                *options, "--config", f"overrides={json.dumps(overrides)}"]

    command = snakemake("--profile", str(REPO / args.profile), "-n", "--quiet", "rules")
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU time: what the plan costs on an idle machine
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
        return result.returncode

    planned, expected = planned_jobs(result.stdout + result.stderr), expected_jobs(cfg, args.concepts)
    shards = math.ceil(args.concepts / cfg["concepts"]["shard_size"])
    print(f"{args.concepts} concepts, shard_size {cfg['concepts']['shard_size']} -> {shards} shards; "
          f"{len(cfg['methods'])} methods; profile {args.profile}")
    for rule in sorted(set(planned) | set(expected)):
        mark = "" if planned[rule] == expected[rule] else "   <-- differs"
        print(f"  {rule:<20} planned {planned[rule]:>7}  expected {expected[rule]:>7}{mark}")
    print(f"jobs planned: {sum(planned.values())}  expected: {sum(expected.values())}  plan time: {seconds:.1f} s "
          f"(CPU {usage.ru_utime + usage.ru_stime:.1f} s)")
    if planned != expected:
        return 1
    if args.replan_shard:
        return replan_check(snakemake, workdir, env, cfg["run_name"], args.replan_shard)
    return 0


if __name__ == "__main__":
    sys.exit(main())
