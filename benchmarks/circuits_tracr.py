"""Circuit discovery on every compiled Tracr task, without the workflow: node and edge AUROC and the
wall time of ACDC, EAP and EAP-IG (the fast methods), one task per line.

The same inputs as the circuit_discover stage (`circuits.data`: 64 clean inputs, each with another
input as its corruption, `circuits.noise_floor`: 1e-9) and the methods' default settings; AUROCs by
InterpBench's rule (the headline). SP and SIIT models are left to `experiment=interpbench`.

  python benchmarks/circuits_tracr.py [--methods acdc eap eap_ig] [--n-examples 64] [--noise-floor 1e-9]
"""

from __future__ import annotations

import argparse
import time

import torch

from interpflow.circuits.discovery import discover
from interpflow.circuits.scoring import aurocs, score_sweep
from interpflow.circuits.stages import clean_and_corrupt
from interpflow.circuits.tasks import TASKS
from interpflow.circuits.tracr_model import compile_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["acdc", "eap", "eap_ig"])
    parser.add_argument("--n-examples", type=int, default=64)
    parser.add_argument("--noise-floor", type=float, default=1e-9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| task | " + " | ".join(f"{m} node / edge AUROC (s)" for m in args.methods) + " |")
    print("|---|" + "---|" * len(args.methods))
    for name in TASKS:
        model = compile_task(name)
        clean, corrupt = clean_and_corrupt(model, {"n_examples": args.n_examples, "seed": 0})
        cells = []
        for method in args.methods:
            start = time.perf_counter()
            sweep = discover(method, model.model, clean, corrupt, "kl" if model.categorical else "mse",
                             noise_floor=args.noise_floor)
            scores = aurocs(score_sweep(sweep, model.circuit, model.graph))
            cells.append(f"{scores['node_auroc']:.2f} / {scores['edge_auroc']:.2f} ({time.perf_counter() - start:.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
