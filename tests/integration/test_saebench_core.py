"""SAEBench's core evaluation on the tiny Llama with SAEs whose answers are known: an identity SAE
(x_hat = x) recovers everything, an SAE that outputs the data's mean explains no variance, a zero
SAE spliced in everywhere is the zero ablation (loss recovered 0), and the per-latent statistics match a hand count."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from interpflow.artifacts import write_parquet, write_tensors
from interpflow.saebench.core import core, sparsity_and_variance
from interpflow.stages.activations import cache_activations

D = 64


def identity_sae(d: int) -> dict[str, torch.Tensor]:
    """2d ReLU latents reading +x and -x: relu(x) - relu(-x) = x exactly."""
    eye = torch.eye(d)
    return {"W_enc": torch.cat([eye, -eye], dim=1), "b_enc": torch.zeros(2 * d), "W_dec": torch.cat([eye, -eye]),
            "b_dec": torch.zeros(d), "threshold": torch.zeros(2 * d)}


def constant_sae(d: int, output: torch.Tensor) -> dict[str, torch.Tensor]:
    """Latents that never fire, so the reconstruction is b_dec = `output` for every token."""
    return {"W_enc": torch.zeros(d, 8), "b_enc": torch.full((8,), -1.0), "W_dec": torch.randn(8, d),
            "b_dec": output.clone(), "threshold": torch.zeros(8)}


@pytest.fixture(scope="module")
def cached(tiny_model_dir, tiny_model_cfg, tmp_path_factory):
    folder = tmp_path_factory.mktemp("core")
    frame = pd.DataFrame({
        "example_id": range(12), "concept_id": [0] * 12, "label": [1, 0] * 6, "category": ["positive", "negative"] * 6,
        "genre": ["text"] * 12, "input": [f"Tell me about item {i}." for i in range(12)],
        "output": [f"Item {i} is a thing with {i} parts, and it is often found near the river." for i in range(12)],
    })
    write_parquet(frame, folder / "data.parquet")
    act_cfg = {"batch_size": 4, "max_length": 64, "dtype": "float32"}
    cache_activations(str(tiny_model_dir), tiny_model_cfg, 2, act_cfg, str(folder / "data.parquet"),
                      str(folder / "acts.safetensors"), str(folder / "acts.index.parquet"))
    from safetensors import safe_open

    with safe_open(str(folder / "acts.safetensors"), "pt") as f:
        mean = f.get_tensor("acts").mean(dim=0)
    return folder, mean


def run_core(cached, tiny_model_dir, tiny_model_cfg, sae: dict, name: str, **eval_cfg) -> dict:
    folder, _ = cached
    write_tensors(sae, folder / f"{name}.safetensors", metadata={"source": "train"})
    out = folder / f"{name}.json"
    core(str(tiny_model_dir), tiny_model_cfg, 2, str(folder / f"{name}.safetensors"), name, [str(folder / "acts.safetensors")],
         [str(folder / "acts.index.parquet")], [str(folder / "data.parquet")], {"reconstruction_examples": 6, "batch_size": 3, **eval_cfg},
         str(out))
    return json.loads(out.read_text())


def test_identity_sae_recovers_everything(cached, tiny_model_dir, tiny_model_cfg):
    result = run_core(cached, tiny_model_dir, tiny_model_cfg, identity_sae(D), "identity")
    metrics = result["eval_result_metrics"]
    assert result["eval_type_id"] == "core" and len(result["eval_result_details"]) == 2 * D
    for key in ("explained_variance", "explained_variance_centered", "explained_variance_legacy"):
        assert metrics["reconstruction_quality"][key] == pytest.approx(1.0, abs=1e-5), key
    assert metrics["reconstruction_quality"]["mse"] == pytest.approx(0.0, abs=1e-8)
    assert metrics["reconstruction_quality"]["cossim"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["shrinkage"]["l2_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["shrinkage"]["relative_reconstruction_bias"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["model_performance_preservation"]["ce_loss_score"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["model_behavior_preservation"]["kl_div_with_sae"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["model_behavior_preservation"]["kl_div_score"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["model_behavior_preservation"]["kl_div_with_ablation"] > 0.01
    # every coordinate is nonzero, so each token fires exactly one of +x_i / -x_i per dimension
    assert metrics["sparsity"]["l0"] == pytest.approx(D, abs=0.01)
    assert metrics["token_stats"]["total_tokens_eval_reconstruction"] > 0
    assert metrics["shrinkage"]["l2_norm_in"] != round(metrics["shrinkage"]["l2_norm_in"], 6)  # written unrounded


def test_mean_sae_explains_no_variance_and_zero_sae_is_the_ablation(cached, tiny_model_dir, tiny_model_cfg):
    _, mean = cached
    mean_result = run_core(cached, tiny_model_dir, tiny_model_cfg, constant_sae(D, mean), "mean")
    assert mean_result["eval_result_metrics"]["reconstruction_quality"]["explained_variance_centered"] == pytest.approx(0.0, abs=1e-4)
    assert mean_result["eval_result_metrics"]["misc_metrics"]["frac_alive"] == 0.0
    # spliced in at every position (BOS too), an SAE whose output is 0 is exactly the zero ablation
    zero = run_core(cached, tiny_model_dir, tiny_model_cfg, constant_sae(D, torch.zeros(D)), "zero",
                    exclude_special_tokens_from_reconstruction=False)["eval_result_metrics"]
    performance, behaviour = zero["model_performance_preservation"], zero["model_behavior_preservation"]
    assert performance["ce_loss_with_sae"] == pytest.approx(performance["ce_loss_with_ablation"], abs=1e-6)
    assert behaviour["kl_div_with_ablation"] > 0.01  # the ablation does change the model's predictions
    assert performance["ce_loss_score"] == pytest.approx(0.0, abs=1e-6)
    assert behaviour["kl_div_score"] == pytest.approx(0.0, abs=1e-6)


def test_per_latent_statistics_match_a_hand_count():
    sae = identity_sae(2)  # latents: +x0, +x1, -x0, -x1
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [3.0, 0.0]])
    owners = np.array([0, 0, 1, 2])  # three examples: two tokens, one, one
    metrics, features = sparsity_and_variance(sae, x, owners, prompts_per_batch=2)
    assert features["feature_density"].tolist() == pytest.approx([0.75, 0.0, 0.25, 0.0])
    consistency = features["consistent_activation_heuristic"]
    assert consistency[0] == pytest.approx(1.5) and consistency[2] == pytest.approx(1.0)  # 3 firings in 2 examples; 1 in 1
    assert torch.isnan(consistency[1]) and torch.isnan(consistency[3])
    assert metrics["l0"] == 1.0 and metrics["l1"] == pytest.approx(7 / 4)
    assert metrics["explained_variance"] == pytest.approx(1.0)
