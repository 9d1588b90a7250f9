"""SAEBench's SCR on the two-attribute biographies' layout with planted activations: profession
along one dimension, gender along another, the biased probe trained where they coincide. An SAE
with a gender latent lets ablation recover the profession probe's accuracy (SCR near 1); an SAE
whose latents do not read gender recovers nothing (SCR near 0). The templated texts keep their
splits' names apart and their cells balanced."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from interpflow.artifacts import write_parquet, write_tensors
from interpflow.errors import ConfigError
from interpflow.saebench.scr import scr
from interpflow.saebench.two_attribute import two_attribute_texts

from cached_acts import write_cached

D = 12
TOKENS = 2
PROFESSION, GENDER = 0, 1  # the planted dimensions
# A trained probe: SAEBench's takes ~5,000 AdamW steps at lr 1e-3 on its 4,000 texts, and its best-test
# epoch is the first to separate the classes, on these few texts (240) a probe hardly off its random start
FEW_EXAMPLES_PROBE = {"probe_lr": 0.01, "probe_selection": "last_epoch"}


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scr")
    texts = two_attribute_texts([["professor", "nurse"]], {"train": 60, "test": 40}, seed=0)
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(len(texts), TOKENS, D))
    acts[:, :, PROFESSION] += 2.0 * (2 * texts["label"].to_numpy()[:, None] - 1)
    acts[:, :, GENDER] += 4.0 * (2 * (texts["gender"] == "male").to_numpy()[:, None] - 1)  # the louder attribute
    write_cached(folder, "acts", texts[["example_id", "concept_id", "label", "category", "genre"]], list(acts))
    write_parquet(texts, folder / "texts.parquet")
    return folder


def signed_identity_sae(reads_gender: bool) -> dict[str, torch.Tensor]:
    """2D ReLU latents reading +x and -x (an exact reconstruction); optionally none reading gender."""
    eye = torch.eye(D)
    w_enc = torch.cat([eye, -eye], dim=1)
    if not reads_gender:
        w_enc[:, [GENDER, D + GENDER]] = 0.0
    return {"W_enc": w_enc, "b_enc": torch.zeros(2 * D), "W_dec": torch.cat([eye, -eye]), "b_dec": torch.zeros(D),
            "threshold": torch.zeros(2 * D)}


def run(folder, sae: dict, name: str) -> dict:
    write_tensors(sae, folder / f"{name}.safetensors", {"source": "train"})
    out = folder / f"{name}.json"
    scr(str(folder / f"{name}.safetensors"), name, str(folder / "acts.safetensors"), str(folder / "acts.index.parquet"),
        str(folder / "texts.parquet"), "toy", 2, {"n_values": [2, 4], **FEW_EXAMPLES_PROBE}, str(out))
    return json.loads(out.read_text())


def test_ablating_the_gender_latents_recovers_the_profession_probe(cached):
    result = run(cached, signed_identity_sae(True), "with_gender")
    detail = result["eval_result_details"][0]
    assert detail["dataset_name"] == "two_attribute_professor/nurse"
    # the biased probe leaned on the louder attribute, gender: worse on profession, so direction 1 is reported
    assert detail["biased_probe_profession_accuracy"] < 0.8 < detail["biased_probe_gender_accuracy"]
    assert detail["profession_probe_accuracy"] >= 0.95
    metrics = result["eval_result_metrics"]["scr_metrics"]
    assert metrics["scr_metric_threshold_2"] == metrics["scr_dir1_threshold_2"]
    assert metrics["scr_metric_threshold_2"] >= 0.8, metrics


def test_an_sae_blind_to_gender_removes_nothing(cached):
    metrics = run(cached, signed_identity_sae(False), "blind")["eval_result_metrics"]["scr_metrics"]
    assert abs(metrics["scr_dir1_threshold_2"]) <= 0.1, metrics


def test_texts_keep_names_apart_and_cells_balanced():
    texts = two_attribute_texts([["professor", "nurse"], ["architect", "journalist"]], {"train": 10, "test": 5}, seed=1)
    counts = texts.groupby(["split", "pair", "profession", "gender"]).size()
    assert set(counts[counts.index.get_level_values("split") == "train"]) == {10}
    assert set(counts[counts.index.get_level_values("split") == "test"]) == {5}
    first_names = {split: set(texts.loc[texts["split"] == split, "output"].str.split().str[1]) for split in ("train", "test")}
    assert not first_names["train"] & first_names["test"]
    from interpflow.saebench.two_attribute import PROFESSIONS

    assert all(any(does in out for does in PROFESSIONS[p][0]) and p not in out for p, out in zip(texts["profession"], texts["output"]))
    assert all(out.startswith("Mr. " if g == "male" else "Ms. ") for g, out in zip(texts["gender"], texts["output"]))
    with pytest.raises(ConfigError, match="unknown professions"):
        two_attribute_texts([["professor", "astronaut"]], {"train": 1}, seed=0)
