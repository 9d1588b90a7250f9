"""Our TopK trainer against sae_lens's trainer (TopK) on the same cached activations.

Both train an SAE with the same dictionary size, k, token budget, batch size and learning rate on
the same training tokens, and are scored on the same held-out tokens: fraction of variance
explained (FVE), L0, dead latents (no firing on the held-out tokens) and wall time. Ratios are
measured in this one run.

  python benchmarks/sae_trainers.py ACTS.safetensors [ACTS2 ...] [--n-latents 4096] [--k 32] [--epochs 3]

ACTS: cached training activations of a workflow run, e.g.
results/demo/acts/smollm2_135m/L15/train/s0000.safetensors.
"""

from __future__ import annotations

import argparse
import time

import torch

from interpflow.sae.format import firing_counts, fraction_of_variance_explained
from interpflow.sae.lens_training import train_with_sae_lens
from interpflow.sae.stage import read_acts
from interpflow.sae.topk import TopKConfig, train_topk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("acts", nargs="+")
    parser.add_argument("--n-latents", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--max-tokens", type=int, default=200_000)
    args = parser.parse_args()

    tokens = read_acts(args.acts, args.max_tokens, seed=0)
    held = len(tokens) // 10
    order = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(1))
    train, test = tokens[order[held:]], tokens[order[:held]]
    print(f"{len(train)} training tokens, {len(test)} held out, d={tokens.shape[1]}, "
          f"{args.n_latents} latents, k={args.k}, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}")

    results = {}
    start = time.perf_counter()
    ours = train_topk(train, TopKConfig(n_latents=args.n_latents, k=args.k, epochs=int(args.epochs),
                                        batch_size=args.batch_size, lr=args.lr))
    results["interpflow_topk"] = (ours, time.perf_counter() - start)
    start = time.perf_counter()
    lens, _ = train_with_sae_lens(train, {"architecture": "topk", "n_latents": args.n_latents, "k": args.k,
                                          "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr})
    results["sae_lens_topk"] = (lens, time.perf_counter() - start)

    for name, (sae, seconds) in results.items():
        counts = firing_counts(sae, test)
        print(f"{name:16s} FVE {fraction_of_variance_explained(sae, test):.4f}  L0 {float(counts.sum()) / len(test):.1f}  "
              f"dead {int((counts == 0).sum())}  {seconds:.1f} s")
    (ours, t_ours), (lens, t_lens) = results["interpflow_topk"], results["sae_lens_topk"]
    print(f"fve_ours_minus_lens={fraction_of_variance_explained(ours, test) - fraction_of_variance_explained(lens, test):+.4f} "
          f"time_ours_over_lens={t_ours / t_lens:.2f}")


if __name__ == "__main__":
    main()
