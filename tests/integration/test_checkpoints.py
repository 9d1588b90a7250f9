"""Per-concept checkpoints: a killed training job resumes, and a finished concept is never trained twice."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import TrainingData


class Counting(PerConceptMethod):
    """Records which concepts it trained; dies on `die_on`."""

    name = "counting"

    def __init__(self, cfg, die_on=None):
        super().__init__(cfg)
        self.trained, self.die_on = [], die_on

    def train_concept(self, concept):
        if concept.concept_id == self.die_on:
            raise KeyboardInterrupt("killed")
        self.trained.append(concept.concept_id)
        return {"directions": torch.full((3,), float(concept.concept_id))}


def shard_data(tmp_path, key="k1") -> TrainingData:
    concepts = pd.DataFrame({"concept_id": [0, 1, 2], "concept": ["a", "b", "c"], "genre": "text"})
    examples = pd.DataFrame({"concept_id": [0, 1, 2, -1], "label": [1, 1, 1, 0], "genre": "text",
                             "input": "i", "output": "o", "category": ["positive"] * 3 + ["negative"]})
    return TrainingData(concepts=concepts, examples=examples, checkpoint_dir=tmp_path / "ckpt", checkpoint_key=key)


def test_killed_job_resumes_without_retraining(tmp_path):
    dying = Counting({}, die_on=2)
    with pytest.raises(KeyboardInterrupt):
        dying.train(shard_data(tmp_path))
    assert dying.trained == [0, 1]
    resumed = Counting({})
    data = shard_data(tmp_path)
    tensors = resumed.train(data)
    assert resumed.trained == [2]  # 0 and 1 came from their checkpoints
    assert data.trained == [2]
    assert tensors["directions"][:, 0].tolist() == [0.0, 1.0, 2.0]
    again = Counting({})
    again.train(shard_data(tmp_path))
    assert again.trained == []


def test_checkpoints_from_other_inputs_are_not_reused(tmp_path):
    Counting({}).train(shard_data(tmp_path, key="config A"))
    other = Counting({})
    other.train(shard_data(tmp_path, key="config B"))
    assert other.trained == [0, 1, 2]


def test_without_a_checkpoint_dir_everything_trains(tmp_path):
    data = shard_data(tmp_path)
    data.checkpoint_dir = None
    method = Counting({})
    method.train(data)
    method.train(data)
    assert method.trained == [0, 1, 2, 0, 1, 2]


def test_an_unreadable_checkpoint_is_discarded_with_a_warning(tmp_path):
    Counting({}).train(shard_data(tmp_path))
    damaged = tmp_path / "ckpt" / "concept_1.safetensors"
    damaged.write_bytes(b"\x00" * 5)  # a job killed while the disk was full
    method = Counting({})
    with pytest.warns(UserWarning, match="concept_1.safetensors"):
        method.train(shard_data(tmp_path))
    assert method.trained == [1]


def test_the_checkpoint_key_holds_the_methods_code(monkeypatch):
    from interpflow.methods import build_method
    from interpflow.stages import train as train_stage

    diffmean, probe = build_method({"name": "diffmean"}), build_method({"name": "probe"})
    key = train_stage.checkpoint_key_for(diffmean, {"x": 1}, None, 2, 0, "data")
    assert key != train_stage.checkpoint_key_for(probe, {"x": 1}, None, 2, 0, "data")
    monkeypatch.setattr(train_stage, "code_fingerprint", lambda *modules: "edited")
    assert key != train_stage.checkpoint_key_for(diffmean, {"x": 1}, None, 2, 0, "data")
