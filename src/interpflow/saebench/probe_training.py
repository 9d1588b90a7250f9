"""The linear probes of TPP and SCR, trained as SAEBench 0.6.0 trains them (`train_probe_gpu` in its
`evals/sparse_probing/probe_training.py`, called by `evals/scr_and_tpp/main.py`).

A probe is one linear unit with a bias on mean-pooled activations: logit = x.w + b, class 1 when the
logit is > 0. It starts as torch's `nn.Linear` starts (seeded), and AdamW (torch's defaults but the
learning rate, so weight decay 0.01) minimises the mean binary cross-entropy plus
`probe_l1_penalty` x sum|w| (the bias is not penalised) over shuffled batches of
`probe_train_batch_size`, for `probe_epochs` epochs. After each epoch the probe is scored on a
selection set and the epoch with the best accuracy is kept (the first of equals); training stops
after `early_stopping_patience` epochs without a better one (SAEBench sets it to the number of
epochs, so it never stops early). `probe_selection` names the selection set:

- `best_test` (SAEBench's): the evaluation's test set, the one whose accuracies it then reports,
  so the test set chooses the probe;
- `best_validation`: `probe_validation_fraction` of each class's training examples, held out of
  the training (the clean variant: the test set is only scored);
- `last_epoch`: no selection, the probe after the last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from interpflow.errors import ConfigError
from interpflow.torch_threads import torch_threads

PROBE_DEFAULTS = {  # SAEBench's ScrAndTppEvalConfig
    "probe_epochs": 20,
    "probe_lr": 1e-3,
    "probe_l1_penalty": 1e-3,
    "probe_train_batch_size": 16,
    "early_stopping_patience": 20,
    "probe_selection": "best_test",
    "probe_validation_fraction": 0.2,  # best_validation only
}


@dataclass(frozen=True)
class LinearProbe:
    weight: np.ndarray         # (d,)
    bias: float
    epoch: int                 # the epoch kept, from 1
    selection_accuracy: float  # its accuracy on the selection set (NaN for last_epoch)

    def predict(self, features: np.ndarray) -> np.ndarray:
        logits = torch.nn.functional.linear(torch.as_tensor(features, dtype=torch.float32),
                                            torch.as_tensor(self.weight)[None], torch.tensor([self.bias]))
        return (logits.squeeze(-1) > 0).long().numpy()

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(features) == np.asarray(labels)).mean())


def train_probe(train_x: np.ndarray, train_y: np.ndarray, selection: tuple[np.ndarray, np.ndarray] | None,
                cfg: dict, seed: int) -> LinearProbe:
    """SAEBench's probe training on (train_x, train_y), the epoch chosen on `selection` (features,
    labels), or the last epoch when it is None. Seeded: the same call gives the same probe, and the
    torch RNG of the caller is left as it was."""
    x, y = torch.as_tensor(train_x, dtype=torch.float32), torch.as_tensor(train_y, dtype=torch.float32)
    batch = cfg["probe_train_batch_size"]
    best, epochs_without_gain = None, 0
    # one thread: on batches of 16 the threads' hand-offs cost 100x the arithmetic (same numbers)
    with torch.random.fork_rng(devices=[]), torch_threads(1):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(x.shape[1], 1)
        optimizer = torch.optim.AdamW(layer.parameters(), lr=cfg["probe_lr"])
        for epoch in range(1, cfg["probe_epochs"] + 1):
            order = torch.randperm(len(x))
            for start in range(0, len(x), batch):
                rows = order[start : start + batch]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(layer(x[rows]).squeeze(-1), y[rows])
                loss = loss + cfg["probe_l1_penalty"] * layer.weight.abs().sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            probe = LinearProbe(layer.weight.detach()[0].numpy().copy(), float(layer.bias.detach()[0]), epoch, float("nan"))
            if selection is None:
                best = probe
                continue
            accuracy = probe.accuracy(*selection)
            if best is None or accuracy > best.selection_accuracy:
                best, epochs_without_gain = replace(probe, selection_accuracy=accuracy), 0
            else:
                epochs_without_gain += 1
                if epochs_without_gain >= cfg["early_stopping_patience"]:
                    break
    return best


def _select_on_test(train, test, cfg, rng):
    return train, test


def _select_on_validation(train, test, cfg, rng):
    features, labels = train
    held_out = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n = min(max(1, round(cfg["probe_validation_fraction"] * len(rows))), len(rows) - 1)
        held_out[rows[:n]] = True
    return (features[~held_out], labels[~held_out]), (features[held_out], labels[held_out])


def _no_selection(train, test, cfg, rng):
    return train, None


SELECTION_SETS = {"best_test": _select_on_test, "best_validation": _select_on_validation, "last_epoch": _no_selection}


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, cfg: dict,
              seed: int) -> LinearProbe:
    """A TPP / SCR probe on (train_x, train_y), its epoch chosen as `cfg["probe_selection"]` says;
    (test_x, test_y) is the test set the evaluation scores it on."""
    choice = cfg["probe_selection"]
    if choice not in SELECTION_SETS:
        raise ConfigError(f"probe_selection is {choice!r}; it must be one of {', '.join(SELECTION_SETS)}")
    fit, selection = SELECTION_SETS[choice]((np.asarray(train_x), np.asarray(train_y)), (test_x, test_y), cfg,
                                           np.random.default_rng(seed))
    return train_probe(*fit, selection, cfg, seed)
