"""SAEBench's `sparse_probing` evaluation of one SAE at one (model, layer).

One binary task per concept of the run: the concept's positive examples against its negatives.
Probes train on the `train` split's cached activations and are scored on the `latent_eval`
split's, so every number is a held-out accuracy. Each example is one vector: the mean of its
scored tokens' residual-stream activations (the LLM's features) or of their SAE latents (the
SAE's), as SAEBench mean-pools over a text's tokens. Per task, as SAEBench:

- `llm_test_accuracy`, `sae_test_accuracy`: a logistic-regression probe on every dimension / latent;
- `llm_top_{k}_test_accuracy`, `sae_top_{k}_test_accuracy`: a probe on only the k dimensions /
  latents whose train means differ most between the classes (|mean_pos - mean_neg|, top k).

Each class is subsampled to the size of the smaller one (SAEBench balances its classes), and every
probe is sklearn's L2 logistic regression (C 1, SAEBench's top-k probe). SAEBench trains the full
probes by gradient descent and keeps the epoch with the best *test* accuracy; we fit on train alone
(docs/benchmarks/sae.md). The metrics average the tasks; `eval_result_details` has one row
per task.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from interpflow.artifacts import open_tensors, read_parquet, read_tensors
from interpflow.sae.format import check_sae, encode
from interpflow.saebench.output import write_eval_output
from interpflow.errors import ConfigError

DEFAULTS = {
    "k_values": [1, 2, 5],           # SAEBench's
    "max_examples_per_class": 1000,  # per task and split (SAEBench: 4,000 train and 1,000 test per class)
    "min_examples_per_class": 4,     # a concept with fewer in either split is left out (and listed)
    "max_iter": 1000,                # SAEBench's top-k probes: sklearn's default 100
    "C": 1.0,
    "seed": 0,
}


def pooled_examples(acts_files: list[str], index_files: list[str], sae: dict | None = None,
                    chunk_tokens: int = 8192) -> tuple[np.ndarray, pd.DataFrame]:
    """One row per cached example: the mean of its tokens' activations (sae None) or SAE latents,
    with the examples' index rows (concept_id, label, category, genre, ...)."""
    rows, frames = [], []
    for acts_path, index_path in zip(acts_files, index_files):
        index = read_parquet(index_path)
        with open_tensors(acts_path) as f:
            acts = f.get_tensor("acts")
        owner = torch.repeat_interleave(torch.arange(len(index)), torch.tensor(index["n_tokens"].to_numpy(), dtype=torch.long))
        starts = torch.tensor(index["offset"].to_numpy(), dtype=torch.long)
        width = acts.shape[1] if sae is None else sae["W_enc"].shape[1]
        sums = torch.zeros(len(index), width)
        for begin in range(0, int(starts[-1] + index["n_tokens"].iloc[-1]) if len(index) else 0, chunk_tokens):
            block = acts[begin : begin + chunk_tokens].float()
            features = block if sae is None else encode(sae, block).float()
            sums.index_add_(0, owner[begin : begin + len(block)], features)
        counts = torch.tensor(index["n_tokens"].to_numpy(), dtype=torch.float32).clamp_min(1)[:, None]
        rows.append((sums / counts).numpy())
        frames.append(index.reset_index(drop=True))
    return np.concatenate(rows), pd.concat(frames, ignore_index=True)


def concept_tasks(train: pd.DataFrame, test: pd.DataFrame, cfg: dict) -> tuple[list[dict], list[int]]:
    """Per concept, the row numbers of its balanced positives (1) and negatives (0) in each split.

    A train negative with concept_id -1 is shared by every concept of its genre; test negatives
    are the concept's own plain negatives (hard negatives are left to concept detection)."""
    rng = np.random.default_rng(cfg["seed"])
    tasks, skipped = [], []
    for concept_id in sorted(set(test.loc[test["label"] == 1, "concept_id"]) & set(train.loc[train["label"] == 1, "concept_id"])):
        genre = test.loc[test["concept_id"] == concept_id, "genre"].iloc[0]
        own_or_shared = (train["concept_id"] == concept_id) | ((train["concept_id"] == -1) & (train["genre"] == genre))
        splits = {
            "train": (np.flatnonzero((train["concept_id"] == concept_id) & (train["label"] == 1)),
                      np.flatnonzero(own_or_shared & (train["label"] == 0))),
            "test": (np.flatnonzero((test["concept_id"] == concept_id) & (test["label"] == 1)),
                     np.flatnonzero((test["concept_id"] == concept_id) & (test["category"] == "negative"))),
        }
        sizes = [min(len(pos), len(neg), cfg["max_examples_per_class"]) for pos, neg in splits.values()]
        if min(sizes) < cfg["min_examples_per_class"]:
            skipped.append(int(concept_id))
            continue
        task = {"concept_id": int(concept_id)}
        for (split, (pos, neg)), n in zip(splits.items(), sizes):
            rows = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
            task[split] = (rows, np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)])
        tasks.append(task)
    return tasks, skipped


def top_k_by_mean_difference(features: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The k columns whose class means differ most (SAEBench's selection), largest first."""
    difference = np.abs(features[labels == 1].mean(0) - features[labels == 0].mean(0))
    return np.argsort(-difference, kind="stable")[:k]


def fit_probe(features: np.ndarray, labels: np.ndarray, cfg: dict) -> LogisticRegression:
    """Every SAEBench probe here: sklearn's L2 logistic regression, fit on training examples only."""
    return LogisticRegression(C=cfg["C"], max_iter=cfg["max_iter"]).fit(features, labels)


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, cfg: dict) -> float:
    return float((fit_probe(train_x, train_y, cfg).predict(test_x) == test_y).mean())


def task_accuracies(train_features: np.ndarray, test_features: np.ndarray, task: dict, cfg: dict, prefix: str) -> dict:
    """`{prefix}_test_accuracy` and `{prefix}_top_{k}_test_accuracy` of one task."""
    (train_rows, train_y), (test_rows, test_y) = task["train"], task["test"]
    train_x, test_x = train_features[train_rows], test_features[test_rows]
    result = {f"{prefix}_test_accuracy": probe_accuracy(train_x, train_y, test_x, test_y, cfg)}
    for k in cfg["k_values"]:
        columns = top_k_by_mean_difference(train_x, train_y, k)
        result[f"{prefix}_top_{k}_test_accuracy"] = probe_accuracy(train_x[:, columns], train_y, test_x[:, columns], test_y, cfg)
    return result


def evaluate(llm: tuple[np.ndarray, np.ndarray], sae: tuple[np.ndarray, np.ndarray], tasks: list[dict], cfg: dict) -> pd.DataFrame:
    """One row per task: its sizes and every probe's test accuracy. llm and sae: (train, test) pooled features."""
    rows = []
    for task in tasks:
        rows.append({"concept_id": task["concept_id"], "n_train": len(task["train"][1]), "n_test": len(task["test"][1]),
                     **task_accuracies(*llm, task, cfg, "llm"), **task_accuracies(*sae, task, cfg, "sae")})
    return pd.DataFrame(rows)


def probe_inputs(sae: str, train: tuple[list[str], list[str]], test: tuple[list[str], list[str]], make_tasks,
                 no_task_message: str) -> tuple[dict, tuple, tuple, object, list[int]]:
    """What the probing evaluations share: the SAE's tensors, (train, test) mean-pooled LLM features,
    the tasks `make_tasks(train_index, test_index)` builds (ValueError with `no_task_message` when
    there are none, before the SAE encodes a token), its left-out concepts, and (train, test) pooled
    SAE latents. train / test: (activation files, index files) of the split."""
    tensors = read_tensors(sae)
    check_sae(tensors)
    (llm_train, train_rows), (llm_test, test_rows) = pooled_examples(*train), pooled_examples(*test)
    tasks, skipped = make_tasks(train_rows, test_rows)
    if not tasks:
        raise ConfigError(no_task_message)
    sae_features = (pooled_examples(*train, tensors)[0], pooled_examples(*test, tensors)[0])
    return tensors, (llm_train, llm_test), sae_features, tasks, skipped


def sparse_probing(sae: str, sae_name: str, train_acts: list[str], train_index: list[str], test_acts: list[str],
                   test_index: list[str], model_name: str, layer: int, eval_cfg: dict, out: str) -> None:
    """SAEBench's sparse-probing metrics of the SAE at `sae`, written as SAEBench's JSON to `out`."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    _, llm, sae_features, tasks, skipped = probe_inputs(
        sae, (train_acts, train_index), (test_acts, test_index), lambda train, test: concept_tasks(train, test, cfg),
        f"sparse_probing: no concept has {cfg['min_examples_per_class']} positives and negatives in both the train and "
        "the latent_eval split; lower saebench.sparse_probing.min_examples_per_class or generate more examples per concept")
    table = evaluate(llm, sae_features, tasks, cfg)

    accuracy_columns = [c for c in table.columns if c.endswith("_test_accuracy")]
    means = table[accuracy_columns].mean()
    metrics = {"llm": {c: round(float(means[c]), 6) for c in accuracy_columns if c.startswith("llm_")},
               "sae": {c: round(float(means[c]), 6) for c in accuracy_columns if c.startswith("sae_")}}
    details = [{"dataset_name": f"concept_{row['concept_id']}",
                **{k: round(float(v), 6) if k in accuracy_columns else int(v) for k, v in row.items()}}
               for row in table.to_dict("records")]
    eval_config = {**cfg, "model_name": model_name, "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "dataset_names": [d["dataset_name"] for d in details],
                   "dataset": "one task per concept: its positives against its negatives, train split to fit, "
                              "latent_eval split to score"}
    write_eval_output(out, "sparse_probing", eval_config, metrics, details, sae, sae_name,
                      unstructured={"concepts_left_out": skipped})
    print(f"sparse_probing {sae_name}: {len(tasks)} tasks, LLM {metrics['llm']['llm_test_accuracy']:.3f}, "
          f"SAE {metrics['sae']['sae_test_accuracy']:.3f}, "
          + ", ".join(f"SAE top-{k} {metrics['sae'][f'sae_top_{k}_test_accuracy']:.3f}" for k in cfg["k_values"]))
