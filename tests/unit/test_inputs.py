"""Which files each stage reads, from the composed config: the user's files (rule inputs), the shipped
data (a content hash in the stage's fingerprint), nothing for remote data."""

from __future__ import annotations

from pathlib import Path

import pytest

from interpflow.config import compose
from interpflow.inputs import PACKAGE_ROOT, package_data, user_inputs


@pytest.fixture(scope="module")
def config_dir(repo_root: Path) -> Path:
    return repo_root / "config"


def test_demo_data_is_shipped_data_not_a_user_input(config_dir):
    cfg = compose(config_dir, ["experiment=tiny"])
    for stage in ("concepts", "train_data", "eval_data"):
        assert user_inputs(cfg, stage) == []
        assert len(package_data(cfg, stage)) == 16
    # the training data reads the steering list too (to keep it apart); the concept list does not
    assert package_data(cfg, "concepts") != package_data(cfg, "train_data") == package_data(cfg, "eval_data")
    assert package_data(cfg, "judge") == ""


def test_generator_instructions_are_read_by_generated_data_only(config_dir, tmp_path):
    mine = tmp_path / "instructions.txt"
    mine.write_text("Say hello.\nSay goodbye.\n")
    overrides = ["experiment=tiny", "concepts.source=inline", "concepts.names=[rain]", f"generator.instructions={mine}"]
    generated = compose(config_dir, [*overrides, "generator=local"])
    assert user_inputs(generated, "train_data") == user_inputs(generated, "eval_data") == [str(mine)]
    assert user_inputs(generated, "concepts") == []
    # the steering list is still the shipped one: only it is hashed
    steering = PACKAGE_ROOT / "data/demo/steering_instructions.json"
    assert package_data(generated, "train_data") != ""
    steering_only = compose(config_dir, ["experiment=tiny", "generator=local", f"steering.instructions={steering}"])
    assert user_inputs(steering_only, "train_data") == []  # a file inside the package counts as shipped


def test_a_folder_is_every_file_under_it_and_remote_data_is_nothing(config_dir, tmp_path):
    (tmp_path / "sae/sub").mkdir(parents=True)
    for name in ("cfg.json", "sae_weights.safetensors", "sub/extra.txt"):
        (tmp_path / "sae" / name).write_text(name)
    labels = tmp_path / "labels.csv"
    cfg = compose(config_dir, ["experiment=tiny", "+sae@saes.mine=gemma_scope", f"saes.mine.path={tmp_path / 'sae'}",
                               "+method@methods.sae=sae", "methods.sae.sae=mine", f"+methods.sae.labels={labels}",
                               "saebench.unlearning.forget_questions=hf://datasets/someone/wmdp/bio.parquet",
                               f"saebench.unlearning.retain_corpus={labels}"])
    assert user_inputs(cfg, "sae", sae="mine") == [str(tmp_path / "sae" / n) for n in
                                                   ("cfg.json", "sae_weights.safetensors", "sub/extra.txt")]
    assert user_inputs(cfg, "train", method="sae") == [str(labels)]
    assert user_inputs(cfg, "train", method="diffmean") == []
    assert user_inputs(cfg, "unlearning_questions") == []  # hf://: its name is in the params, nothing to watch
    assert user_inputs(cfg, "cache_unlearning_corpus") == [str(labels)]


def test_a_hub_model_is_an_input_only_as_a_local_folder(config_dir, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model/config.json").write_text("{}")
    cfg = compose(config_dir, ["experiment=tiny", "+model@models.local=hub", f"models.local.id={tmp_path / 'model'}",
                               "+model@models.remote=hub", "models.remote.revision=0123abcd",
                               "judge.embedding_model=" + str(tmp_path / "model")])
    assert user_inputs(cfg, "prepare_model", model="local") == [str(tmp_path / "model/config.json")]
    assert user_inputs(cfg, "prepare_model", model="remote") == []  # keyed by id and revision instead
    assert user_inputs(cfg, "prepare_model", model="tiny_llama") == []
    assert cfg["models"]["remote"]["revision"] == "0123abcd"
    assert user_inputs(cfg, "judge") == [str(tmp_path / "model/config.json")]
