"""The fields of SAEBench's JSON that its tools read: `sae_cfg_dict` with the architecture as trained
(a BatchTopK SAE is `batchtopk`, not the JumpReLU form sae_lens stores it in), `d_sae` and the
training tokens; `sae_bench_commit_hash`; and the export to eval_results/<eval>/<release>_<sae_id>_eval_results.json.
The tiny SAE run's files are validated against SAEBench's schemas in tests/workflow/test_saebench.py."""

from __future__ import annotations

import json

import pytest
import torch

from interpflow.artifacts import write_tensors
from interpflow.errors import ConfigError
from interpflow.sae.stage import sae as sae_stage
from interpflow.saebench.eval_results import saebench_eval_results
from interpflow.saebench.output import PROTOCOL, write_eval_output


def trained_sae(tmp_path, cfg: dict):
    acts = tmp_path / "acts.safetensors"
    x = torch.randn(512, 16, generator=torch.Generator().manual_seed(0))
    write_tensors({"acts": x, "offsets": torch.tensor([0, len(x)])}, acts, metadata={"layer": 2})
    out = tmp_path / f"{cfg.get('architecture', 'topk')}.safetensors"
    sae_stage({"source": "train", "n_latents": 32, "batch_size": 128, "summary_tokens": 256, **cfg}, [str(acts)], str(out))
    return out


def written(tmp_path, sae, name="core.json") -> dict:
    write_eval_output(tmp_path / name, "core", {}, {}, [], sae, "x")
    return json.loads((tmp_path / name).read_text())


def test_batchtopk_is_labelled_as_trained_with_its_size_and_tokens(tmp_path):
    sae = trained_sae(tmp_path, {"trainer": "sae_lens", "architecture": "batchtopk", "k": 4, "epochs": 2})
    result = written(tmp_path, sae)
    config = result["sae_cfg_dict"]
    assert config["architecture"] == "batchtopk" and config["inference_architecture"] == "jumprelu"
    assert config["d_sae"] == 32 and config["d_in"] == 16
    assert config["training_tokens"] == 512 * 2  # the tokens times the epochs
    assert result["sae_bench_commit_hash"] == PROTOCOL and "sae-bench 0.6.0" in PROTOCOL


def test_our_topk_trainer(tmp_path):
    config = written(tmp_path, trained_sae(tmp_path, {"k": 4, "epochs": 3}))["sae_cfg_dict"]
    assert config["architecture"] == "topk" and "inference_architecture" not in config
    assert config["d_sae"] == 32 and config["training_tokens"] == 512 * 3


def pretrained_sae(tmp_path, release="gemma-scope-2b-pt-res-canonical", sae_id="layer_2/width_16k/canonical"):
    tensors = {"W_enc": torch.zeros(16, 8), "b_enc": torch.zeros(8), "W_dec": torch.zeros(8, 16), "b_dec": torch.zeros(16),
               "threshold": torch.zeros(8)}
    path = tmp_path / "pretrained.safetensors"
    write_tensors(tensors, path, metadata={"source": "pretrained", "release": release, "sae_id": sae_id,
                                           "architecture": "jumprelu", "d_in": 16, "d_sae": 8, "trained_on_tokens": 0})
    return path


def test_a_pretrained_sae_keeps_its_name_and_has_no_training_tokens(tmp_path):
    results = tmp_path / "results/run/saebench"
    core = results / "gemma/L2/canonical/core.json"
    write_eval_output(core, "core", {}, {}, [], pretrained_sae(tmp_path), "canonical")
    config = json.loads(core.read_text())["sae_cfg_dict"]
    assert config["architecture"] == "jumprelu" and config["d_sae"] == 8 and "training_tokens" not in config
    trained = results / "gemma/L2/mine/core.json"
    write_eval_output(trained, "core", {}, {}, [], trained_sae(tmp_path, {"k": 4, "epochs": 1}), "mine")
    saebench_eval_results([str(core), str(trained)], str(results / "eval_results"))
    exported = sorted(p.relative_to(results / "eval_results").as_posix() for p in (results / "eval_results").rglob("*"))
    # SAEBench's get_results_filepath: '/' in release or id becomes '_'
    assert exported == ["core", "core/gemma-scope-2b-pt-res-canonical_layer_2_width_16k_canonical_eval_results.json",
                        "core/interpflow_gemma_L2_mine_eval_results.json"]
    copy = json.loads((results / "eval_results/core/interpflow_gemma_L2_mine_eval_results.json").read_text())
    assert (copy["sae_lens_release_id"], copy["sae_lens_id"]) == ("interpflow", "gemma_L2_mine")


def test_two_saes_under_one_name_are_refused(tmp_path):
    results = tmp_path / "results/run/saebench"
    paths = [results / f"gemma/L2/{name}/core.json" for name in ("a", "b")]
    for path in paths:
        write_eval_output(path, "core", {}, {}, [], pretrained_sae(tmp_path), path.parent.name)
    with pytest.raises(ConfigError, match="same pretrained release and sae_id"):
        saebench_eval_results([str(p) for p in paths], str(results / "eval_results"))
    with pytest.raises(ConfigError, match="is not results/<run>/saebench"):
        saebench_eval_results([str(tmp_path / "core.json")], str(results / "eval_results"))


def test_a_result_without_its_scores_is_left_out_of_the_saebench_layout(tmp_path, capsys):
    results = tmp_path / "results/run/saebench"
    sae = pretrained_sae(tmp_path)
    scored, unscored = results / "gemma/L2/canonical/core.json", results / "gemma/L2/canonical/absorption.json"
    write_eval_output(scored, "core", {}, {"sparsity": {"l0": 3.0}}, [], sae, "canonical")
    write_eval_output(unscored, "absorption_first_letter", {}, {"mean": {"mean_absorption_fraction_score": None}}, [],
                      sae, "canonical", {"not_evaluated": "too few letters"})
    saebench_eval_results([str(scored), str(unscored)], str(results / "eval_results"))
    assert [p.parent.name for p in (results / "eval_results").rglob("*.json")] == ["core"]
    assert f"left out, a metric is null (not evaluated; see each file's eval_result_unstructured): {unscored}" in capsys.readouterr().out
