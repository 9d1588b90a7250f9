"""Regenerate tests/conformance/fixtures/saebench_scr_tpp/scr_tpp.json with sae-bench 0.6.0's own SCR / TPP code.

Run it with the Python of the throwaway environment that regenerate/saebench_core.py uses (sae-bench
0.6.0, torch 2.13.0, torchvision uninstalled; docs/benchmarks/sae.md, "Conformance with SAEBench"); it imports nothing
of interpflow:

    /tmp/sb_venv/bin/python tests/conformance/regenerate/saebench_scr_tpp.py [--out tests/conformance/fixtures/saebench_scr_tpp]

Every number comes from SAEBench's functions on fixed, seeded inputs:

- probes: `train_probe_gpu` (AdamW, L1 penalty, the best-test epoch, early stopping) on fixed
  train / test features, torch seeded just before the call, with SAEBench's SCR/TPP settings and one
  case that stops early; the probe's weights, bias, best test accuracy and `test_probe_gpu` accuracy;
- effects: `get_effects_per_class_precomputed_acts` (SCR's and TPP's attribution) of a ReLU SAE and a
  fixed probe on token activations with masked (zero) tokens;
- top_n: `select_top_n_features` on fixed effects;
- ablation: `ablated_precomputed_activations` (mean-pooled activations with latents zero-ablated, the
  SAE's error kept) and the probe's accuracy on them;
- scr: `get_scr_plotting_dict` on fixed accuracies (ordinary, degenerate-denominator and tied pairs)
  and `average_results_dictionaries` over them;
- tpp: `create_tpp_plotting_dict` on fixed accuracies.
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

import torch

from sae_bench.custom_saes.relu_sae import ReluSAE
from sae_bench.evals.scr_and_tpp import main as scr_tpp
from sae_bench.evals.sparse_probing import probe_training
from sae_bench.sae_bench_utils.general_utils import average_results_dictionaries

SETTINGS = {"batch_size": 16, "epochs": 20, "lr": 1e-3, "l1_penalty": 1e-3, "early_stopping_patience": 20}  # SAEBench's
PROBE_CASES = {  # name -> (seed of the data, torch seed of the training, settings)
    "saebench_defaults": (0, 42, SETTINGS),
    "saebench_defaults_other_seed": (1, 7, SETTINGS),
    "stops_early": (2, 3, {**SETTINGS, "lr": 0.05, "early_stopping_patience": 2}),
}
D, D_SAE, TOKENS = 12, 40, 5
SCR_PROBE, PROFESSION, GENDER = "male_professor / female_nurse", "professor / nurse", "male / female"


def short(x: torch.Tensor) -> torch.Tensor:
    """Inputs at 4 decimals, so that the fixture stays small (the outputs are kept whole)."""
    return torch.round(x, decimals=4)


def listed(x: torch.Tensor) -> list:
    """An input, as short() left it, in its short decimals (read back as float32, the same numbers)."""
    return x.double().numpy().round(4).tolist()


def probe_data(seed: int) -> dict[str, torch.Tensor]:
    """Two overlapping classes along a random direction, 7 x 16 + 5 training rows (a last, short batch)."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(D, generator=g), dim=0)
    data = {}
    for split, n in (("train", 117), ("test", 60), ("eval", 40)):
        labels = torch.randint(0, 2, (n,), generator=g)
        features = torch.randn(n, D, generator=g) + 0.8 * (2 * labels[:, None] - 1) * direction + 0.3
        data[f"{split}_x"], data[f"{split}_y"] = short(features), labels.to(torch.int32)
    return data


def probe_case(data_seed: int, train_seed: int, settings: dict) -> dict:
    data = probe_data(data_seed)
    torch.manual_seed(train_seed)
    probe, best_accuracy = probe_training.train_probe_gpu(data["train_x"], data["train_y"], data["test_x"], data["test_y"],
                                                          dim=D, **settings)
    eval_accuracy = probe_training.test_probe_gpu(data["eval_x"], data["eval_y"], 500, probe)
    return {"data_seed": data_seed, "train_seed": train_seed, "settings": settings,
            "inputs": {k: listed(v) for k, v in data.items()},
            "weight": probe.net.weight.detach()[0].tolist(), "bias": float(probe.net.bias.detach()[0]),
            "best_test_accuracy": best_accuracy, "eval_accuracy": eval_accuracy}


def relu_sae(g: torch.Generator) -> ReluSAE:
    sae = ReluSAE(D, D_SAE, "stand-in", 0, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        sae.W_enc.copy_(short(torch.randn(D, D_SAE, generator=g) / D**0.5))
        sae.W_dec.copy_(short(torch.randn(D_SAE, D, generator=g) / D**0.5))
        sae.b_enc.copy_(short(0.2 * torch.randn(D_SAE, generator=g) - 0.1))
        sae.b_dec.copy_(short(0.1 * torch.randn(D, generator=g)))
    return sae


def token_acts(g: torch.Generator, n: int, shift: torch.Tensor, masked: bool) -> torch.Tensor:
    """[n, TOKENS, D] activations; with `masked`, each row's last 0-3 tokens zero (masked, as SAEBench caches them)."""
    acts = short(torch.randn(n, TOKENS, D, generator=g) + shift)
    if masked:
        for row, kept in enumerate(torch.randint(2, TOKENS + 1, (n,), generator=g).tolist()):
            acts[row, kept:] = 0.0
    return acts


def effects_and_ablation() -> dict:
    g = torch.Generator().manual_seed(10)
    sae = relu_sae(g)
    shift = 0.7 * torch.randn(D, generator=g)
    # SCR's pair keys; TPP reads the same dict as two classes (each the other's negatives)
    acts = {GENDER: token_acts(g, 24, shift, True), "female_data_only": token_acts(g, 24, -shift, True)}
    probe = probe_training.Probe(D, torch.float32)
    with torch.no_grad():
        probe.net.weight.copy_(short(torch.randn(1, D, generator=g)))
        probe.net.bias.fill_(0.1)
    effects = {kind: scr_tpp.get_effects_per_class_precomputed_acts(sae, probe, GENDER, acts, perform_scr, 7).tolist()
               for kind, perform_scr in (("scr", True), ("tpp", False))}

    # SAEBench's ablation also subtracts the ablated latents' decoding at masked (zero) tokens, where
    # a ReLU SAE may fire; these rows have none, as the project's cached activations have none
    ablation_acts = torch.cat([token_acts(g, 15, shift, False), token_acts(g, 15, -shift, False)])
    ablation_labels = torch.cat([torch.ones(15), torch.zeros(15)]).to(torch.int32)
    ablated = {}
    for n in (1, 4, 12):
        latents = scr_tpp.select_top_n_features(torch.tensor(effects["scr"]), n, GENDER)
        pooled = scr_tpp.ablated_precomputed_activations(ablation_acts, sae, latents, 8)
        ablated[str(n)] = {"latents": latents.nonzero().flatten().tolist(), "pooled": pooled.tolist(),
                           "accuracy": probe_training.test_probe_gpu(pooled, ablation_labels, 500, probe)}
    return {"sae": {k: listed(getattr(sae, k).detach()) for k in ("W_enc", "b_enc", "W_dec", "b_dec")},
            "probe": {"weight": listed(probe.net.weight.detach()[0]), "bias": float(probe.net.bias.detach()[0])},
            "acts": {k: listed(v) for k, v in acts.items()}, "effects": effects,
            "ablation_acts": listed(ablation_acts), "ablation_labels": ablation_labels.tolist(), "ablated": ablated}


def top_n_cases() -> list[dict]:
    g = torch.Generator().manual_seed(20)
    signed = short(torch.randn(20, generator=g))
    signed[5] = 0.0  # one zero: SAEBench takes it when fewer than n effects are positive, after the positives
    absolute = short(torch.randn(20, generator=g).abs())
    absolute[[2, 9, 14]] = 0.0
    cases = []
    for effects, ns in ((signed, (1, 3, 10, 19, 20)), (absolute, (2, 5, 17, 20))):
        for n in ns:
            mask = scr_tpp.select_top_n_features(effects, n, "case")
            cases.append({"effects": listed(effects), "n": n, "latents": mask.nonzero().flatten().tolist()})
    return cases


def scr_cases() -> dict:
    """Per pair, the accuracies SAEBench's get_scr_plotting_dict reads, and its scores."""
    thresholds = (2, 20)
    pairs = {  # name -> (oracle profession, oracle gender, biased on profession, biased on gender, ablated: dir1, dir2 per N)
        "ordinary": (0.95, 0.99, 0.62, 0.91, ((0.70, 0.88), (0.90, 0.85))),
        "gender_worse": (0.97, 0.98, 0.93, 0.71, ((0.92, 0.90), (0.75, 0.80))),
        "degenerate_profession": (0.9005, 0.97, 0.9000, 0.95, ((0.95, 0.96), (0.94, 0.93))),  # oracle - biased < 0.001
        "oracle_below_biased": (0.80, 0.99, 0.85, 0.93, ((0.82, 0.90), (0.95, 0.97))),
        "tied": (0.96, 0.97, 0.80, 0.80, ((0.85, 0.90), (0.83, 0.86))),  # no scr_metric: neither direction is worse
    }
    cases, results = {}, {}
    for name, (oracle_p, oracle_g, biased_p, biased_g, (dir1, dir2)) in pairs.items():
        on_profession, on_gender = f"{SCR_PROBE} probe on {PROFESSION} data", f"{SCR_PROBE} probe on {GENDER} data"
        clean = {PROFESSION: oracle_p, GENDER: oracle_g, on_profession: biased_p, on_gender: biased_g}
        ablated = {GENDER: {n: {on_profession: acc} for n, acc in zip(thresholds, dir1)},
                   PROFESSION: {n: {on_gender: acc} for n, acc in zip(thresholds, dir2)}}
        scores = scr_tpp.get_scr_plotting_dict(ablated, clean)
        results[f"{name}_results"] = scores
        cases[name] = {"llm_clean_accs": clean, "class_accuracies": {k: {str(n): v for n, v in by_n.items()}
                                                                     for k, by_n in ablated.items()}, "scores": scores}
    return {"pairs": cases, "averaged": average_results_dictionaries(results, list(pairs))}


def tpp_case() -> dict:
    g = torch.Generator().manual_seed(30)
    classes, thresholds = ["0", "1", "2", "3"], (2, 10, 50)
    clean = {c: 0.85 + 0.15 * float(torch.rand(1, generator=g)) for c in classes}
    ablated = {c: {n: {m: clean[m] - 0.3 * float(torch.rand(1, generator=g)) for m in classes} for n in thresholds}
               for c in classes}
    overall, per_class = scr_tpp.create_tpp_plotting_dict(ablated, clean)
    return {"llm_clean_accs": clean, "class_accuracies": {c: {str(n): v for n, v in by_n.items()} for c, by_n in ablated.items()},
            "overall": overall, "per_class": per_class}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "fixtures" / "saebench_scr_tpp"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(True)  # as run_eval_single_dataset around its probe training
    fixture = {
        "produced_by": "tests/conformance/regenerate/saebench_scr_tpp.py: sae-bench's own scr_and_tpp and probe_training code",
        "versions": {p: version(p) for p in ("sae-bench", "torch", "numpy")},
        "probes": {name: probe_case(*case) for name, case in PROBE_CASES.items()},
        "effects_and_ablation": effects_and_ablation(),
        "top_n": top_n_cases(),
        "scr": scr_cases(),
        "tpp": tpp_case(),
    }
    path = out / "scr_tpp.json"
    path.write_text(json.dumps(fixture) + "\n")
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
