"""Throughput of the steer stage's generation against plain generation, an AxBench-style loop and
the machine's FLOP bound, all measured in one process (absolute speeds differ between machines of
one kind by 2x; only these in-run ratios compare).

The plan is the demo's: 8 concepts x 6 factors x 8 steering prompts = 384 generations of 32 tokens
(greedy) at layer 15 of SmolLM2-135M-Instruct, the config's steering batch size. Each concept gets
a fixed random unit direction with strength factor x a_c (`--a-c`, in the residual's units); the
values change which answers stop early, not the work per token.

  steer:   what the steer stage runs for a vector method: generate_shared (blocks below the layer
           once per distinct prompt, the chat template's prefix once per concept and factor) with
           each generation's perplexity under the unsteered model from the same pass
  plain:   the project's unsteered generation (`generate`, transformers' model.generate) of the same
           prompts, same batch size, no perplexity
  axbench: one concept and factor at a time, batches of 10 prompts, model.generate inside a forward
           hook that adds the vector (AxBench's loop)
  before:  (--before) the steer stage before the shared decoding: `generate` under the hook, then
           the full perplexity pass; greedy generations are compared with the steer stage's
  bound:   tokens/s the machine's fp32 matmul rate allows: rate / (2 x parameters per generated token),
           the rate the higher of two measurements, before and after the stage

Last line: steer_vs_plain=… steer_vs_axbench_loop=… steer_vs_flop_bound=…

  python benchmarks/steering_generation.py [--concepts 8] [--max-new-tokens 32] [--batch-size 384] [--before]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from interpflow.allocator import reuse_freed_memory
from interpflow.config import compose
from interpflow.data.instructions import load_instructions
from interpflow.models.formatting import prompt_ids
from interpflow.models.generation import _left_pad, _trim, adding, generate, perplexity
from interpflow.models.hooks import add_to_residual
from interpflow.models.loading import MANIFEST, load_model, prepare_model
from interpflow.models.shared_decoding import generate_shared

from _machine import flops_per_token, matmul_gflops

REPO = Path(__file__).resolve().parents[1]
BEFORE_BATCH_SIZE = 32  # steering.batch_size before the shared decoding


def axbench_loop(model, tokenizer, layer, prompts, vectors, max_new_tokens, batch_size=10) -> list[list[int]]:
    """One (concept, factor) at a time, prompts in order, batch 10, model.generate under a hook."""
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    out = []
    for start in range(0, len(prompts), batch_size):
        rows = list(range(start, min(start + batch_size, len(prompts))))
        ids, mask = _left_pad([prompts[i] for i in rows], tokenizer.pad_token_id)
        with add_to_residual(model, layer, vectors[rows]):
            generated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                       do_sample=False, pad_token_id=tokenizer.pad_token_id, top_p=None, top_k=None)
        out += [_trim(seq, stop_ids) for seq in generated[:, ids.shape[1]:]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concepts", type=int, default=8)
    parser.add_argument("--prompts-per-concept", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's steering.batch_size")
    parser.add_argument("--a-c", type=float, default=8.0, help="the concepts' max latent (strength = factor x a_c)")
    parser.add_argument("--skip-axbench", action="store_true", help="leave out the (slow) AxBench-style loop")
    parser.add_argument("--before", action="store_true", help="also time the steer stage's code before the shared decoding")
    parser.add_argument("--models-dir", default=str(REPO / "results" / "models"))
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    reuse_freed_memory()  # as the `interpflow` command does for every stage

    cfg = compose(REPO / "config", [])
    model_cfg = cfg["models"]["smollm2_135m"]
    layer = model_cfg["layers"][0]
    model_dir = Path(args.models_dir) / "smollm2_135m"
    if not (model_dir / MANIFEST).exists():
        prepare_model(model_cfg, model_dir)
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])

    factors = cfg["steering"]["factors"]
    batch_size = args.batch_size or cfg["steering"]["batch_size"]
    instructions = load_instructions(cfg["steering"]["instructions"], "steering.instructions")
    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(args.concepts, model.config.hidden_size, generator=generator), dim=-1)
    plan = [(c, f, instructions[(c * args.prompts_per_concept + p) % len(instructions)])
            for c in range(args.concepts) for f in factors for p in range(args.prompts_per_concept)]
    prompts = [prompt_ids(tokenizer, model_cfg, text) for _, _, text in plan]
    vectors = torch.stack([directions[c] * f * args.a_c for c, f, _ in plan])

    rates = [matmul_gflops()]
    generate(model, tokenizer, prompts[:4], None, 4, 4)  # warm-up

    start = time.perf_counter()
    steered, _ = generate_shared(model, tokenizer, prompts, adding(model, layer, vectors), layer, args.max_new_tokens,
                                 batch_size, steering_keys=[(c, f) for c, f, _ in plan])
    t_steer = time.perf_counter() - start
    rates.append(matmul_gflops())
    rate = max(rates)  # a slow moment of a shared machine must not flatter the ratio
    bound = rate * 1e9 / flops_per_token(model)
    start = time.perf_counter()
    plain = generate(model, tokenizer, prompts, None, args.max_new_tokens, batch_size)
    t_plain = time.perf_counter() - start
    n_steer, n_plain = sum(map(len, steered)), sum(map(len, plain))
    print(f"SmolLM2-135M-Instruct, layer {layer}, {len(plan)} generations of <= {args.max_new_tokens} tokens, "
          f"batch {batch_size}, {torch.get_num_threads()} threads")
    print(f"fp32 matmul 2048^2: {rate:.0f} GFLOP/s (the higher of {rates[0]:.0f} and {rates[1]:.0f}, measured before "
          f"and after the steer stage) -> FLOP bound {bound:.0f} generated tok/s "
          f"({flops_per_token(model) / 1e9:.2f} GFLOP per token)")
    print(f"steer stage (generation + perplexity): {n_steer} tokens in {t_steer:.1f} s = {n_steer / t_steer:.0f} tok/s")
    print(f"plain generation:                      {n_plain} tokens in {t_plain:.1f} s = {n_plain / t_plain:.0f} tok/s")
    steer_rate, ratios = n_steer / t_steer, {}
    ratios["steer_vs_plain"] = steer_rate / (n_plain / t_plain)
    if args.before:
        start = time.perf_counter()
        before = generate(model, tokenizer, prompts, adding(model, layer, vectors), args.max_new_tokens, BEFORE_BATCH_SIZE)
        perplexity(model, prompts, before, BEFORE_BATCH_SIZE, tokenizer.pad_token_id)
        t_before = time.perf_counter() - start
        n_before = sum(map(len, before))
        differ = [i for i, (a, b) in enumerate(zip(before, steered)) if a != b]
        print(f"steer stage before shared decoding:    {n_before} tokens in {t_before:.1f} s = {n_before / t_before:.0f} tok/s "
              f"({len(plan) - len(differ)}/{len(plan)} generations identical to the steer stage's)")
        for i in differ:
            first = next(k for k, (a, b) in enumerate(zip(before[i] + [-1], steered[i] + [-1])) if a != b)
            print(f"  row {i}: first differs at token {first}")
        ratios["steer_vs_before"] = steer_rate / (n_before / t_before)
    if not args.skip_axbench:
        start = time.perf_counter()
        looped = axbench_loop(model, tokenizer, layer, prompts, vectors, args.max_new_tokens)
        t_loop = time.perf_counter() - start
        n_loop = sum(map(len, looped))
        same = sum(a == b for a, b in zip(looped, steered))
        print(f"AxBench-style loop (batch 10):         {n_loop} tokens in {t_loop:.1f} s = {n_loop / t_loop:.0f} tok/s "
              f"({same}/{len(plan)} generations identical to the steer stage's)")
        ratios["steer_vs_axbench_loop"] = steer_rate / (n_loop / t_loop)
    ratios["steer_vs_flop_bound"] = steer_rate / bound
    print(" ".join(f"{k}={v:.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
