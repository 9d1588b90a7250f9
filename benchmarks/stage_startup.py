"""What every job pays before it works: each `interpflow <stage>` module imported in a fresh
interpreter, and the heavy libraries that import pulls in.

    python benchmarks/stage_startup.py            # every stage, best of 3
    python benchmarks/stage_startup.py --repeats 1 judge steer

Prints one row per stage: the best import time in seconds, its ratio to `import torch` measured in
the same run (absolute times differ between machines of one kind), and which of torch,
transformers, transformer_lens, sae_lens, sentence_transformers, sklearn, openai and tracr it
loads. A stage that loads none of them should start in well under a second.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from interpflow.cli import STAGES

HEAVY = ("torch", "transformers", "transformer_lens", "sae_lens", "sentence_transformers", "sklearn", "openai", "tracr")

PROBE = """
import json, sys, time
start = time.perf_counter()
import {module}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def import_once(module: str) -> dict:
    code = PROBE.format(module=module, heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def best_of(module: str, repeats: int) -> dict:
    runs = [import_once(module) for _ in range(repeats)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", help="stages to measure (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch_s = best_of("torch", args.repeats)["seconds"]
    print(f"import torch: {torch_s:.2f} s (the unit of the ratio column)\n")
    print("| stage | import s | / torch | heavy libraries loaded |")
    print("|:--|--:|--:|:--|")
    for stage in args.stages or sorted(STAGES):
        module = STAGES[stage].partition(":")[0]
        found = best_of(module, args.repeats)
        print(f"| {stage} | {found['seconds']:.2f} | {found['seconds'] / torch_s:.2f} | {', '.join(found['loaded']) or '—'} |")


if __name__ == "__main__":
    main()
