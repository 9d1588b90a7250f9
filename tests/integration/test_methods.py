"""Methods recover a planted direction from synthetic activations; the train and detect stages run
on real artifact files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn.functional import cosine_similarity

from interpflow.artifacts import read_parquet, read_tensors, write_parquet, write_tensors
from interpflow.errors import ConfigError
from interpflow.methods import METHODS, build_method, method_class
from interpflow.methods.base import DirectionMethod
from interpflow.metrics.detection import roc_auc
from interpflow.methods.data import EvalData, TrainingData
from interpflow.stages.detect import detect
from interpflow.stages.train import train


def training_sets(acts, index, concept_id, genre):
    """The concept's positive and negative token activations, as a per-concept method sees them."""
    concepts = pd.DataFrame({"concept_id": [concept_id], "concept": ["c"], "genre": [genre]})
    concept = TrainingData(concepts=concepts, examples=index, acts=acts, index=index).concept(concept_id)
    return concept.pos, concept.neg, concept.pos_example

D = 64
TOKENS = 6  # tokens per example
# as in config/method/*.yaml (checked below)
PROBE_CFG = {"name": "probe", "lr": 0.005, "weight_decay": 0.001, "epochs": 24, "batch_size": 256, "seed": 0}
CFGS = {"diffmean": {"name": "diffmean"}, "pca": {"name": "pca"}, "lat": {"name": "lat", "seed": 0}, "probe": PROBE_CFG}
# The probe takes len(tokens) / batch_size AdamW steps per epoch; with few steps its weights stay close to
# sign(mean difference) (cosine ~0.8 with the true direction), so it gets enough tokens to converge.
EXAMPLES_PER_CLASS = {"diffmean": 40, "probe": 400}


def unit(seed: int) -> torch.Tensor:
    v = torch.randn(D, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


U = unit(100)


def planted(n_pos: int, n_neg: int, seed: int, offset: torch.Tensor | None = None):
    """Examples of TOKENS tokens: positives = noise + 3u on every token, negatives = noise.

    Returns pos tokens, neg tokens, the positive tokens' example numbers, and per-example tensors.
    """
    g = torch.Generator().manual_seed(seed)
    common = torch.zeros(D) if offset is None else offset
    pos_ex = [torch.randn(TOKENS, D, generator=g) + 3 * U + common for _ in range(n_pos)]
    neg_ex = [torch.randn(TOKENS, D, generator=g) + common for _ in range(n_neg)]
    pos_example = torch.arange(n_pos).repeat_interleave(TOKENS)
    return torch.cat(pos_ex), torch.cat(neg_ex), pos_example, pos_ex, neg_ex


def detection_auroc(direction: torch.Tensor, pos_ex, neg_ex) -> float:
    """ROC AUC of max-over-tokens scores."""
    scores = [float((x @ direction).max()) for x in [*pos_ex, *neg_ex]]
    labels = [1] * len(pos_ex) + [0] * len(neg_ex)
    return roc_auc(labels, scores)


@pytest.mark.parametrize("name", ["diffmean", "probe"])
def test_recovers_planted_direction_and_detects(name):
    n = EXAMPLES_PER_CLASS[name]
    pos, neg, pos_example, _, _ = planted(n, n, seed=0)
    direction = build_method(CFGS[name]).train_direction(pos, neg, pos_example)
    assert direction.shape == (D,)
    assert abs(direction.norm().item() - 1) < 1e-5
    assert cosine_similarity(direction, U, dim=0) > 0.9
    # fresh evaluation examples
    _, _, _, pos_ex, neg_ex = planted(30, 30, seed=1)
    assert detection_auroc(direction, pos_ex, neg_ex) >= 0.95


def test_random_direction_does_not_detect():
    """The AUROC check has teeth: a direction orthogonal to u is at chance."""
    _, _, _, pos_ex, neg_ex = planted(30, 30, seed=1)
    other = unit(5)
    other = other - (other @ U) * U
    other = other / other.norm()
    assert detection_auroc(other, pos_ex, neg_ex) < 0.8


def pca_data(seed: int):
    """Positives vary strongly along u (coefficients 2..8) and sit on the positive side; negatives are noise."""
    g = torch.Generator().manual_seed(seed)
    n = 300
    coefficient = 2 + 6 * torch.rand(n, 1, generator=g)
    pos = 0.5 * torch.randn(n, D, generator=g) + coefficient * U
    neg = 0.5 * torch.randn(n, D, generator=g)
    return pos, neg, torch.arange(n)


@pytest.mark.parametrize("name", ["pca", "lat"])
def test_principal_component_methods_point_toward_positives(name):
    pos, neg, pos_example = pca_data(0)
    method = build_method(CFGS[name])
    direction = method.train_direction(pos, neg, pos_example)
    assert abs(direction.norm().item() - 1) < 1e-5
    assert (pos @ direction).mean() > (neg @ direction).mean()  # the sign rule
    assert cosine_similarity(direction, U, dim=0) > 0.9  # and the top component is u, pointing to positives
    # raw fit output may come out with either sign; train_direction fixes it
    raw = method.fit(pos, neg, pos_example)
    assert abs(cosine_similarity(raw, U, dim=0)) > 0.9


def test_lat_follows_axbench_recipe():
    """AxBench's LAT: positives only, disjoint pairs of the shuffled tokens, unit differences, scikit-learn's
    first component. Negatives do not enter (only through the sign)."""
    from sklearn.decomposition import PCA

    pos, neg, pos_example = pca_data(0)
    pos = pos[:101]  # odd: the last shuffled token has no partner
    order = torch.randperm(len(pos), generator=torch.Generator().manual_seed(0))
    shuffled = pos[order].numpy()
    diffs = shuffled[:50] - shuffled[50:100]
    diffs /= np.linalg.norm(diffs, axis=1, keepdims=True)
    expected = PCA(n_components=2).fit(diffs).components_[0]
    direction = build_method(CFGS["lat"]).fit(pos, neg, pos_example)
    assert abs(float(np.dot(direction.numpy(), expected))) == pytest.approx(1.0, abs=1e-4)
    other_negatives = build_method(CFGS["lat"]).fit(pos, neg * 3 + 1, pos_example)
    assert torch.allclose(direction, other_negatives)


def test_sign_rule_flips_a_direction_pointing_away():
    class Backwards(DirectionMethod):
        name = "backwards"

        def fit(self, pos, neg, pos_example):
            return -(pos.mean(0) - neg.mean(0)) * 5

    pos, neg, pos_example, _, _ = planted(20, 20, seed=2)
    direction = Backwards({}).train_direction(pos, neg, pos_example)
    assert cosine_similarity(direction, U, dim=0) > 0.9


def test_diffmean_subtracts_the_negative_mean():
    """With a large offset common to every token, only mean(pos) - mean(neg) removes it."""
    offset = 20 * unit(7)
    pos, neg, pos_example, pos_ex, neg_ex = planted(40, 40, seed=3, offset=offset)
    direction = build_method({"name": "diffmean"}).train_direction(pos, neg, pos_example)
    assert abs(cosine_similarity(direction, offset, dim=0)) < 0.2  # near-orthogonal to the offset
    assert cosine_similarity(direction, U, dim=0) > 0.9
    # the positives' mean alone would point mostly along the offset
    assert cosine_similarity(pos.mean(0), offset, dim=0) > 0.8
    assert detection_auroc(direction, pos_ex, neg_ex) >= 0.95


def test_method_configs_match_the_shipped_ones(repo_root):
    import yaml

    for name, cfg in CFGS.items():
        assert yaml.safe_load((repo_root / "config" / "method" / f"{name}.yaml").read_text()) == cfg


def test_probe_is_seeded():
    pos, neg, pos_example, _, _ = planted(20, 20, seed=4)
    a = build_method(PROBE_CFG).train_direction(pos, neg, pos_example)
    b = build_method(PROBE_CFG).train_direction(pos, neg, pos_example)
    assert torch.equal(a, b)


def test_prompt_method():
    cls = method_class("prompt")
    assert not cls.trains()
    assert cls.needs == "nothing"
    assert cls.uses_factor is False and cls.detects is False and cls.steers is True
    method = build_method({"name": "prompt", "template": "Talk about {concept}.", "format": "{steering_prompt}\n\nQuestion: {instruction}"})
    assert method.steering_instruction("the ocean", "Write a haiku.") == "Talk about the ocean.\n\nQuestion: Write a haiku."
    written = method.steering_instruction("the ocean", "Write a haiku.", " Always mention waves. ")
    assert written == "Always mention waves.\n\nQuestion: Write a haiku."  # the generator's prompt replaces the template
    assert all(cls_.trains() for key, cls_ in METHODS.items() if key not in ("prompt", "prompt_detection"))


def test_unknown_method():
    with pytest.raises(ConfigError, match="unknown method 'nope'; known methods: bow, diffmean, hypersteer, ig, ixg, lat, lora, loreft, pca"):
        build_method({"name": "nope"})


# --- the stages on real files ----------------------------------------------------------------


def write_cache(folder, examples: pd.DataFrame, per_example: list[torch.Tensor], name: str):
    """An activation cache in the format of stages/activations.py."""
    lengths = torch.tensor([len(a) for a in per_example])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    index = examples[["example_id", "concept_id", "label", "category", "genre"]].copy()
    index["n_tokens"] = lengths.numpy()
    index["offset"] = offsets[:-1].numpy()
    acts_path, index_path = folder / f"{name}.safetensors", folder / f"{name}.index.parquet"
    data_path = folder / f"{name}.data.parquet"
    write_tensors({"acts": torch.cat(per_example), "offsets": offsets}, acts_path, metadata={"layer": 2})
    write_parquet(index, index_path)
    write_parquet(examples, data_path)  # the data file (text columns are not needed by activation methods)
    return {"acts": str(acts_path), "index": str(index_path), "data": str(data_path)}


@pytest.fixture()
def stage_files(tmp_path):
    """Two concepts (ids 3 and 8) with their own planted directions, shared negatives, hard negatives."""
    directions = {3: unit(30), 8: unit(80)}
    g = torch.Generator().manual_seed(11)
    concepts = pd.DataFrame(
        {"concept_id": [3, 8], "concept": ["ocean", "music"], "genre": ["text", "text"],
         "shard": ["s0000", "s0000"], "source": "test"}
    )
    concepts_path = tmp_path / "concepts.parquet"
    write_parquet(concepts, concepts_path)

    def split(n_pos: int, n_neg: int, hard: bool, name: str, lengths_seed: int):
        rows, acts = [], []
        rng = np.random.default_rng(lengths_seed)
        for cid, direction in directions.items():
            for _ in range(n_pos):
                n = int(rng.integers(2, 9))
                acts.append(torch.randn(n, D, generator=g) + 4 * direction)
                rows.append({"concept_id": cid, "label": 1, "category": "positive"})
            for _ in range(n_neg if hard else 0):
                n = int(rng.integers(2, 9))
                acts.append(torch.randn(n, D, generator=g))
                rows.append({"concept_id": cid, "label": 0, "category": "hard_negative"})
        for _ in range(n_neg):
            n = int(rng.integers(2, 9))
            acts.append(torch.randn(n, D, generator=g))
            rows.append({"concept_id": -1 if not hard else 3, "label": 0, "category": "negative"})
        frame = pd.DataFrame(rows).assign(genre="text")
        frame.insert(0, "example_id", range(len(frame)))
        return write_cache(tmp_path, frame, acts, name), frame, acts

    train_files, train_frame, train_acts = split(12, 12, hard=False, name="train", lengths_seed=0)
    eval_files, eval_frame, eval_acts = split(10, 6, hard=True, name="eval", lengths_seed=1)
    return {
        "tmp": tmp_path, "concepts": str(concepts_path), "directions": directions,
        "train": train_files, "train_frame": train_frame, "train_acts": train_acts,
        "eval": eval_files, "eval_frame": eval_frame, "eval_acts": eval_acts,
    }


def test_training_sets_pick_positives_and_shared_negatives(stage_files):
    acts = read_tensors(stage_files["train"]["acts"])["acts"]
    index = read_parquet(stage_files["train"]["index"])
    pos, neg, pos_example = training_sets(acts, index, 8, "text")
    frame, per_example = stage_files["train_frame"], stage_files["train_acts"]
    want_pos = [per_example[i] for i in frame.index[(frame["concept_id"] == 8) & (frame["label"] == 1)]]
    want_neg = [per_example[i] for i in frame.index[frame["concept_id"] == -1]]
    assert torch.equal(pos, torch.cat(want_pos))
    assert torch.equal(neg, torch.cat(want_neg))
    assert pos_example.tolist() == [i for i, a in enumerate(want_pos) for _ in range(len(a))]
    # shared negatives of another genre are not used
    shared = index.index[index["concept_id"] == -1]
    code_rows = shared[::2]
    index_mixed = index.copy()
    index_mixed.loc[code_rows, "genre"] = "code"
    _, neg_text, _ = training_sets(acts, index_mixed, 8, "text")
    assert torch.equal(neg_text, torch.cat([per_example[i] for i in shared if i not in set(code_rows)]))
    _, neg_code, _ = training_sets(acts, index_mixed, 8, "code")
    assert torch.equal(neg_code, torch.cat([per_example[i] for i in code_rows]))


@pytest.mark.parametrize("name", ["diffmean", "probe"])
def test_train_and_detect_stages(stage_files, name):
    tmp = stage_files["tmp"]
    # ~120 training tokens: small probe batches give the unit-sphere probe enough steps to turn from its random start
    cfg = {**CFGS[name], "batch_size": 16} if name == "probe" else CFGS[name]
    artifact, artifact_cfg, scores = tmp / f"{name}.safetensors", tmp / f"{name}.json", tmp / f"{name}.detect.parquet"
    train(cfg, stage_files["concepts"], "s0000", out=str(artifact), out_cfg=str(artifact_cfg), **stage_files["train"])

    weights = read_tensors(artifact)
    assert weights["concept_ids"].tolist() == [3, 8]
    assert weights["directions"].shape == (2, D)
    torch.testing.assert_close(weights["directions"].norm(dim=1), torch.ones(2))
    for row, cid in enumerate([3, 8]):
        similarity = cosine_similarity(weights["directions"][row], stage_files["directions"][cid], dim=0)
        # 120 training tokens in 64 dimensions: the probe also separates them along the noise
        assert similarity > (0.9 if name == "diffmean" else 0.6)

    detect(cfg, stage_files["concepts"], "s0000", artifact=str(artifact), out=str(scores), **stage_files["eval"])
    out = read_parquet(scores)
    assert list(out.columns) == ["concept_id", "example_id", "example_concept_id", "category", "label",
                                 "in_pool", "max_score", "mean_score"]
    assert not out["in_pool"].any()  # no pool given
    frame, per_example = stage_files["eval_frame"], stage_files["eval_acts"]
    assert len(out) == 2 * len(frame)  # every example paired with every scoring concept
    for cid in (3, 8):
        mine = out[out["concept_id"] == cid].reset_index(drop=True)
        assert mine["example_id"].tolist() == frame["example_id"].tolist()
        expected_label = ((frame["concept_id"] == cid) & (frame["category"] == "positive")).astype(int)
        assert mine["label"].tolist() == expected_label.tolist()
        # the other concept's positives and this concept's hard negatives and negatives are all label 0
        assert mine.loc[mine["category"] == "hard_negative", "label"].eq(0).all()
        assert mine.loc[mine["example_concept_id"] != cid, "label"].eq(0).all()
        own_non_positive = (mine["example_concept_id"] == cid) & (mine["category"] != "positive")
        assert own_non_positive.any() and mine.loc[own_non_positive, "label"].eq(0).all()
        direction = weights["directions"][[3, 8].index(cid)]
        want_max = [float((a @ direction).max()) for a in per_example]
        want_mean = [float((a @ direction).mean()) for a in per_example]
        np.testing.assert_allclose(mine["max_score"], want_max, atol=1e-5)
        np.testing.assert_allclose(mine["mean_score"], want_mean, atol=1e-5)
        assert roc_auc(mine["label"], mine["max_score"]) >= 0.95


def test_example_scores_segments():
    token_scores = torch.tensor([[1.0], [3.0], [-2.0], [0.5], [0.5], [4.0]])
    max_s, mean_s = EvalData(examples=pd.DataFrame({"n_tokens": [2, 1, 3]})).reduce_tokens(token_scores)
    assert max_s[:, 0].tolist() == [3.0, -2.0, 4.0]
    assert mean_s[:, 0].tolist() == pytest.approx([2.0, -2.0, 5.0 / 3])
