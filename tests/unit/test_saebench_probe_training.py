"""The TPP / SCR probe's epoch selection (saebench/probe_training.py): SAEBench's best-test epoch
reads the test set, the clean variants never do; training is seeded and leaves the caller's RNG
alone. (That the training is SAEBench's is tests/conformance/test_conformance_saebench_scr_tpp.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpflow.errors import ConfigError
from interpflow.saebench.probe_training import PROBE_DEFAULTS, fit_probe


def data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return (rng.normal(size=(n, 8)) + 0.7 * (2 * labels[:, None] - 1)).astype(np.float32), labels


TRAIN, TEST = data(0, 96), data(1, 40)
OTHER_TEST = (TEST[0], 1 - TEST[1])  # the same texts, every label wrong


def probe(selection: str, test=TEST, **settings):
    return fit_probe(*TRAIN, *test, {**PROBE_DEFAULTS, "probe_selection": selection, **settings}, seed=3)


def test_best_test_lets_the_test_set_choose_the_epoch():
    chosen, flipped = probe("best_test"), probe("best_test", OTHER_TEST)
    assert chosen.selection_accuracy == pytest.approx(chosen.accuracy(*TEST))
    assert chosen.selection_accuracy >= max(probe("last_epoch").accuracy(*TEST), flipped.accuracy(*TEST))
    assert chosen.epoch != flipped.epoch  # the labels of the test set moved the choice


def test_best_validation_and_last_epoch_never_read_the_test_set():
    for selection in ("best_validation", "last_epoch"):
        clean, flipped = probe(selection), probe(selection, OTHER_TEST)
        np.testing.assert_array_equal(clean.weight, flipped.weight)
        assert clean.epoch == flipped.epoch
    assert probe("last_epoch").epoch == PROBE_DEFAULTS["probe_epochs"]
    assert 1 <= probe("best_validation").epoch <= PROBE_DEFAULTS["probe_epochs"]


def test_training_is_seeded_and_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = probe("best_test")
    assert torch.rand(1) == expected_next
    np.testing.assert_array_equal(first.weight, probe("best_test").weight)


def test_an_unknown_selection_names_the_choices():
    with pytest.raises(ConfigError, match="probe_selection is 'best_train'; it must be one of best_test, best_validation, last_epoch"):
        probe("best_train")
