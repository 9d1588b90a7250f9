"""Detection-only methods: BoW on planted words in the text; IxG and IG attributions through a
trained head on the tiny Llama, where positives contain a planted token."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from interpflow.methods._attribution import AXBENCH, attributions, batches, head_logit, read_feature, scored_mask, tokenize
from interpflow.errors import ConfigError
from interpflow.methods.bow import BoW
from interpflow.methods.data import ConceptData, EvalData, ModelHandle, TrainingData
from interpflow.methods.ig import IG
from interpflow.methods.ixg import IxG
from interpflow.metrics.detection import roc_auc
from interpflow.models.architectures import decoder_blocks
from interpflow.models.loading import load_model

# Measured on this random model: AxBench's head (last token after the final norm, probability, |x grad|) gives
# ROC AUC 0.65 (IxG) and 0.56 (IG) and finds the planted token in 5 of 20 positives; the residual variant 1.0, 20 of 20.
MIN_AUC = {"axbench": 0.55, "residual": 0.9}
MIN_HITS = {"axbench": 0.0, "residual": 0.9}
FILLER = "the of and to in is was for on with as by at from it that".split()
LAYER = 2


def load_cfg(repo_root, name: str) -> dict:
    return yaml.safe_load((repo_root / "config" / "method" / f"{name}.yaml").read_text())


def sentences(n: int, planted: list[str], seed: int, copies: int = 2) -> list[str]:
    """n texts of 6-10 filler words; `copies` words drawn from `planted` inserted at random places."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(6, 10))]
        for _ in range(copies if planted else 0):
            words.insert(rng.randrange(len(words) + 1), rng.choice(planted))
        out.append(" ".join(words))
    return out


def frame(texts: list[str], concept_id: int, label: int) -> pd.DataFrame:
    category = "positive" if label else "negative"
    return pd.DataFrame({"concept_id": concept_id, "input": "Say something.", "output": texts, "label": label,
                         "category": category, "genre": "text"})


# --- BoW ---------------------------------------------------------------------------------------
WORDS = {0: ["zebra", "savanna", "stripes"], 1: ["piano", "melody", "chord"]}


def bow_training_data(shuffle_labels: bool = False) -> TrainingData:
    parts = []
    for cid, words in WORDS.items():
        parts += [frame(sentences(30, words, seed=10 + cid), cid, 1), frame(sentences(30, [], seed=20 + cid), cid, 0)]
    examples = pd.concat(parts, ignore_index=True)
    if shuffle_labels:  # the core step removed: labels no longer say which texts hold the concept
        for cid in WORDS:
            own = examples.index[examples["concept_id"] == cid]
            examples.loc[own, "label"] = np.random.default_rng(cid).permutation(examples.loc[own, "label"].to_numpy())
    examples.insert(0, "example_id", range(len(examples)))
    concepts = pd.DataFrame({"concept_id": list(WORDS), "concept": ["zebras", "music"], "genre": "text"})
    return TrainingData(concepts=concepts, examples=examples)


def bow_eval_data() -> EvalData:
    parts = []
    for cid, words in WORDS.items():
        parts += [frame(sentences(20, words, seed=30 + cid, copies=1), cid, 1),
                  frame(sentences(20, [], seed=40 + cid), cid, 0)]
    examples = pd.concat(parts, ignore_index=True)
    examples.insert(0, "example_id", range(len(examples)))
    return EvalData(examples=examples)


def bow_aurocs(method: BoW, tensors) -> list[float]:
    data = bow_eval_data()
    max_scores, mean_scores = method.score_examples(tensors, data)
    assert max_scores.shape == (len(data.examples), len(WORDS))
    assert torch.equal(max_scores, mean_scores)  # one score per whole text
    labels = [((data.examples["concept_id"] == c) & (data.examples["label"] == 1)).astype(int) for c in WORDS]
    return [roc_auc(labels[row], max_scores[:, row]) for row in range(len(WORDS))]


def test_bow_detects_planted_words(repo_root):
    method = BoW(load_cfg(repo_root, "bow"))
    tensors = method.train(bow_training_data())
    assert tensors["weight"].shape == (2, 65536) and tensors["bias"].shape == (2,)
    assert min(bow_aurocs(method, tensors)) >= 0.9  # held-out texts, other concept's positives as negatives


def test_bow_fails_without_its_labels(repo_root):
    method = BoW(load_cfg(repo_root, "bow"))
    assert max(bow_aurocs(method, method.train(bow_training_data(shuffle_labels=True)))) < 0.8
    zero = {"weight": torch.zeros(2, 65536), "bias": torch.zeros(2)}
    assert bow_aurocs(method, zero) == [0.5, 0.5]


def test_bow_l1_is_l1_and_the_instruction_counts(repo_root):
    """penalty l1 fits an L1 model on the installed scikit-learn (most weights exactly 0; L2 leaves none at 0),
    and by default the instruction's words count as the response's do (AxBench's text); `text: response`
    ignores them."""
    cfg = load_cfg(repo_root, "bow")
    data = bow_training_data()
    l1 = BoW({**cfg, "penalty": "l1", "C": 1.0}).train(data)["weight"]
    l2 = BoW(cfg).train(data)["weight"]
    used = l2 != 0  # the hashed features that any word reaches
    assert (l1[used] == 0).float().mean() > 0.5 and (l2[used] == 0).float().mean() == 0
    assert min(bow_aurocs(BoW({**cfg, "penalty": "l1", "C": 1.0}), {"weight": l1, "bias": torch.zeros(2)})) >= 0.9
    with pytest.raises(ConfigError, match="penalty"):
        BoW({**cfg, "penalty": "elasticnet"}).train(data)

    examples = data.examples.copy()
    own = examples["concept_id"] == 0
    examples.loc[own, "input"] = np.where(examples.loc[own, "label"] == 1, "Tell me about zebras.", "Say something.")
    examples.loc[own, "output"] = list(sentences(int(own.sum()), [], seed=50))  # the responses carry no concept word
    moved = TrainingData(concepts=data.concepts, examples=examples)
    probe = EvalData(examples=pd.DataFrame({"input": ["Tell me about zebras.", "Say something."], "output": ["ok", "ok"]}))
    both = BoW(cfg)
    scores, _ = both.score_examples(both.train(moved), probe)
    assert scores[0, 0] > scores[1, 0]
    response_only = BoW({**cfg, "text": "response"})
    scores, _ = response_only.score_examples(response_only.train(moved), probe)
    assert scores[0, 0] == scores[1, 0]


# --- IxG and IG --------------------------------------------------------------------------------
PLANTED = ["zebra"]


@pytest.fixture(scope="module")
def handle(tiny_model_dir, tiny_model_cfg) -> ModelHandle:
    """The tiny Llama with its embeddings scaled x30. Its random blocks write as much into the residual
    stream as its embeddings hold, scrambling which token is where; scaled, each token's own state
    dominates its residual stream, as in a trained model, so a head can read the planted token."""
    model, tokenizer = load_model(tiny_model_dir, device="cpu")
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(30)
    return ModelHandle(model, tokenizer, tiny_model_cfg, LAYER)


def concept(handle: ModelHandle) -> ConceptData:
    return ConceptData(0, "zebras", "text", frame(sentences(40, PLANTED, seed=0), 0, 1),
                       frame(sentences(40, [], seed=1), 0, 0), model=handle)


@pytest.fixture(scope="module")
def eval_data(handle) -> EvalData:
    examples = pd.concat([frame(sentences(20, PLANTED, seed=2), 0, 1), frame(sentences(20, [], seed=3), 0, 0)],
                         ignore_index=True)
    return EvalData(examples=examples, model=handle)


# The variant this project used before AxBench's defaults (see methods/_attribution.py).
RESIDUAL = {"head": "linear", "read": "mean_response", "target": "logit", "aggregate": "signed", "baseline": "zero"}


@pytest.fixture(scope="module", params=[("ixg", "axbench"), ("ig", "axbench"), ("ixg", "residual"), ("ig", "residual")],
                ids=lambda p: "-".join(p))
def trained(request, repo_root, handle):
    name, variant = request.param
    cls = {"ixg": IxG, "ig": IG}[name]
    method = cls({**load_cfg(repo_root, name), **(RESIDUAL if variant == "residual" else {})})
    tensors = {key: value[None] for key, value in method.train_concept(concept(handle)).items()}
    return method, tensors, variant


def test_attributions_detect_the_planted_token(trained, eval_data, handle):
    method, tensors, variant = trained
    keys = {"head_weight", "head_bias"} if variant == "residual" else {"head_w1", "head_b1", "head_w2", "head_b2"}
    assert set(tensors) == keys and all(len(value) == 1 for value in tensors.values())
    max_scores, mean_scores = method.score_examples(tensors, eval_data)
    labels = eval_data.examples["label"]
    assert roc_auc(labels, max_scores[:, 0]) >= MIN_AUC[variant]
    # the top-scoring token of a positive is the planted one
    examples = tokenize(handle, eval_data.examples, 256)
    zebra = handle.tokenizer(" zebra", add_special_tokens=False).input_ids
    hits = 0
    heads = method.heads(tensors)
    for rows, ids, mask in batches(examples, 64, handle.tokenizer.pad_token_id):
        scored = scored_mask(examples, rows, mask)
        attr = attributions(handle.model, LAYER, ids, mask, scored, heads, method.setup, method.alphas(),
                            method.baseline(handle.model))[0]
        for r, i in enumerate(rows):
            if labels[i] == 1:
                top = int(attr[r].masked_fill(~scored[r], -torch.inf).argmax())
                hits += int(ids[r, top]) in zebra
    assert hits >= MIN_HITS[variant] * int(labels.sum())


def test_random_heads_do_not_detect(trained, eval_data):
    """Without head training the same check fails: random heads rank examples at about chance."""
    method, tensors, _ = trained
    labels = eval_data.examples["label"]
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        random_head = {key: torch.randn(value.shape, generator=g) for key, value in tensors.items()}
        max_scores, _ = method.score_examples(random_head, eval_data)
        assert roc_auc(labels, max_scores[:, 0]) < 0.8


def test_integrated_gradients_are_complete(repo_root, handle, eval_data):
    """IG's token scores (signed) sum to target(h) - target(baseline), up to the Riemann error: from zero on the
    scored tokens, and from AxBench's mean embedding at every position (prompt included)."""
    for variant, steps in ((RESIDUAL, 32), ({"aggregate": "signed"}, 256)):  # left Riemann sums converge slower
        ig = IG({**load_cfg(repo_root, "ig"), **variant, "steps": steps})
        heads = IG.heads({k: v[None] for k, v in ig.train_concept(concept(handle)).items()})
        examples = tokenize(handle, eval_data.examples.iloc[:6], 256)
        rows, ids, mask = next(batches(examples, 6, handle.tokenizer.pad_token_id))
        scored = scored_mask(examples, rows, mask)
        baseline = ig.baseline(handle.model)

        def target(alpha: float) -> torch.Tensor:
            def scale(_module, _inputs, output):
                hidden = output[0] if isinstance(output, tuple) else output
                start = torch.zeros_like(hidden) if baseline is None else baseline.expand_as(hidden)
                moved = start + alpha * (hidden - start)
                if baseline is None:
                    moved = torch.where(scored[..., None], moved, hidden)
                return (moved, *output[1:]) if isinstance(output, tuple) else moved

            hook = decoder_blocks(handle.model)[LAYER].register_forward_hook(scale)
            try:
                with torch.no_grad():
                    out = head_logit(heads[0], read_feature(handle.model, ids, mask, scored, ig.setup.read))
                    return torch.sigmoid(out) if ig.setup.target == "probability" else out
            finally:
                hook.remove()

        attr = attributions(handle.model, LAYER, ids, mask, scored, heads, ig.setup, ig.alphas(), baseline)[0]
        total = (attr * (scored if baseline is None else mask.bool())).sum(dim=1)
        difference = target(1.0) - target(0.0)
        torch.testing.assert_close(total, difference, rtol=0.1, atol=0.1 * float(difference.abs().max()) + 1e-4)


@pytest.mark.parametrize("name, cls", [("bow", BoW), ("ixg", IxG), ("ig", IG)])
def test_configs_build(repo_root, name, cls):
    cfg = load_cfg(repo_root, name)
    assert cfg["name"] == cls.name == name
    method = cls(cfg)
    assert method.detects and not method.steers
    assert cls.needs == ("text" if name == "bow" else "model")
    if name != "bow":  # AxBench's attribution setup unless the config switches it
        keys = [k for k in AXBENCH if name == "ig" or k != "baseline"]  # IxG has no baseline
        assert {k: cfg[k] for k in keys} == {k: AXBENCH[k] for k in keys}
        with pytest.raises(ConfigError, match="read must be one of"):
            cls({**cfg, "read": "first_token"})


# --- prompt-based detection ---------------------------------------------------------------------


def test_prompt_detection_rates_each_concepts_own_examples(repo_root, tiny_model_dir, tiny_model_cfg, tmp_path):
    """Through the detect stage, without an artifact: every concept rates its own examples with the judge's concept
    rubric; the tiny random model writes no readable rating, so each own example scores AxBench's -1; another
    concept's examples are not rated (NaN), and no pool is asked for."""
    from interpflow.artifacts import read_parquet, write_parquet
    from interpflow.methods.prompt_detection import PromptDetection
    from interpflow.stages.detect import detect

    assert PromptDetection.detection_needs() == "model" and not PromptDetection.trains()
    assert not PromptDetection.scores_pool and not PromptDetection.steers
    concepts = pd.DataFrame({"concept_id": [3, 8], "concept": ["zebras", "music"], "genre": "text",
                             "shard": "s0000", "source": "test"})
    write_parquet(concepts, tmp_path / "concepts.parquet")
    examples = pd.concat([frame(sentences(2, ["zebra"], seed=0), 3, 1), frame(sentences(1, [], seed=1), 3, 0),
                          frame(sentences(2, ["piano"], seed=2), 8, 1)], ignore_index=True)
    examples.insert(0, "example_id", range(len(examples)))
    write_parquet(examples, tmp_path / "eval.parquet")
    cfg = {**load_cfg(repo_root, "prompt_detection"), "max_new_tokens": 6}
    detect(cfg, str(tmp_path / "concepts.parquet"), "s0000", data=str(tmp_path / "eval.parquet"),
           out=str(tmp_path / "scores.parquet"), model_dir=str(tiny_model_dir), model_cfg=tiny_model_cfg, layer=1)
    out = read_parquet(tmp_path / "scores.parquet")
    own = out["concept_id"] == out["example_concept_id"]
    assert len(out) == 2 * len(examples) and not out["in_pool"].any()
    assert out.loc[own, "max_score"].eq(-1.0).all() and out.loc[~own, "max_score"].isna().all()
