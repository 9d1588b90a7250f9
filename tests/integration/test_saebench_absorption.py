"""SAEBench's absorption on planted first-letter activations: an SAE built to absorb half of the
words of letter 'a' into word latents is caught, and the same SAE without them is not."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from interpflow.artifacts import write_parquet
from interpflow.saebench.absorption import absorption, split_features, word_absorption
from interpflow.saebench.first_letter import LETTERS, answer, build_prompts, first_letter

WORDS_PER_LETTER, LETTER_NORM, WORD_NORM = 40, 3.0, 0.5
OWN = WORDS_PER_LETTER // 2  # the even words of 'a' get their own orthogonal dimension (the ones absorbed)
D = 26 + OWN + 38


def planted_words(seed: int = 0):
    """Activations: 3 * e_letter + 0.5 * u_word, u_word a unit vector outside the letter dimensions:
    its own dimension for the even words of 'a', a random direction in the last 38 for the others."""
    rng = np.random.default_rng(seed)
    rows, acts, word_dirs = [], [], []
    for letter in range(26):
        for i in range(WORDS_PER_LETTER):
            u = np.zeros(D)
            if letter == 0 and i % 2 == 0:
                u[26 + i // 2] = 1.0
            else:
                u[26 + OWN:] = rng.normal(size=38)
                u /= np.linalg.norm(u)
            x = LETTER_NORM * np.eye(D)[letter] + WORD_NORM * u
            acts.append(x + rng.normal(scale=0.02, size=D))
            word_dirs.append(u)
            rows.append({"word": f"{LETTERS[letter]}{i}", "letter": letter, "split": "test" if i % 5 == 0 else "train"})
    return pd.DataFrame(rows), np.array(acts, dtype=np.float32), np.array(word_dirs, dtype=np.float32)


def letter_sae(index: pd.DataFrame, word_dirs: np.ndarray, absorbed: list[int]) -> dict[str, torch.Tensor]:
    """A ReLU SAE: one latent per letter, a +/- latent per other dimension, and for each absorbed word
    a latent that fires on it and writes its letter; the letter's own latent is silenced on it."""
    enc, dec = [], []
    for letter in range(26):
        e = np.eye(D)[letter]
        read = e.copy()
        for w in absorbed:
            if index["letter"].iloc[w] == letter:
                read = read - 10 * word_dirs[w]
        enc.append(read)
        dec.append(e)
    for j in range(26, D):
        for sign in (1, -1):
            enc.append(sign * np.eye(D)[j])
            dec.append(sign * np.eye(D)[j])
    for w in absorbed:
        letter = index["letter"].iloc[w]
        written = LETTER_NORM * np.eye(D)[letter] + WORD_NORM * word_dirs[w]
        enc.append(word_dirs[w] * np.linalg.norm(written) / WORD_NORM)
        dec.append(written / np.linalg.norm(written))
    enc, dec = np.array(enc, dtype=np.float32), np.array(dec, dtype=np.float32)
    n = len(enc)
    return {"W_enc": torch.tensor(enc.T.copy()), "b_enc": torch.zeros(n), "W_dec": torch.tensor(dec),
            "b_dec": torch.zeros(D), "threshold": torch.zeros(n)}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("absorption")
    index, acts, word_dirs = planted_words()
    save_file({"acts": torch.tensor(acts)}, str(folder / "acts.safetensors"))
    write_parquet(index, folder / "index.parquet")
    a_words = np.flatnonzero(index["letter"] == 0)
    absorbed = list(a_words[::2])  # the even words of 'a', test and train alike
    outputs = {}
    for name, words in (("absorbing", absorbed), ("clean", [])):
        save_file(letter_sae(index, word_dirs, words), str(folder / f"{name}.safetensors"))
        out = folder / f"{name}.json"
        absorption(str(folder / f"{name}.safetensors"), name, str(folder / "acts.safetensors"), str(folder / "index.parquet"),
                   "planted", 0, {"min_letters_for_eval": 20}, str(out))
        outputs[name] = json.loads(out.read_text())
    test_a = index[(index["letter"] == 0) & (index["split"] == "test")].index
    return outputs, len(set(test_a) & set(absorbed)) / len(test_a)


def test_absorption_is_found_where_it_was_built(planted):
    outputs, expected = planted
    by_letter = {d["first_letter"]: d for d in outputs["absorbing"]["eval_result_details"]}
    assert len(by_letter) == 26  # every planted letter has a reliable ground-truth probe
    assert by_letter["a"]["mean_absorption_fraction"] == pytest.approx(expected, abs=0.05)
    assert by_letter["a"]["full_absorption_rate"] == pytest.approx(expected, abs=0.05)
    assert by_letter["a"]["num_split_features"] == 1
    assert max(d["mean_absorption_fraction"] for k, d in by_letter.items() if k != "a") < 0.02
    mean = outputs["absorbing"]["eval_result_metrics"]["mean"]
    assert mean["mean_absorption_fraction_score"] == pytest.approx(expected / 26, abs=0.01)


def test_no_absorption_without_absorbing_latents(planted):
    outputs, _ = planted
    mean = outputs["clean"]["eval_result_metrics"]["mean"]
    assert mean["mean_absorption_fraction_score"] < 0.01
    assert mean["mean_full_absorption_score"] == 0
    assert mean["mean_num_split_features"] == 1


def test_too_few_reliable_letters_reports_no_score(tmp_path):
    index, acts, word_dirs = planted_words()
    acts[:, :26] = np.random.default_rng(1).normal(size=(len(acts), 26))  # no letter information left
    save_file({"acts": torch.tensor(acts)}, str(tmp_path / "acts.safetensors"))
    write_parquet(index, tmp_path / "index.parquet")
    save_file(letter_sae(index, word_dirs, []), str(tmp_path / "sae.safetensors"))
    absorption(str(tmp_path / "sae.safetensors"), "sae", str(tmp_path / "acts.safetensors"), str(tmp_path / "index.parquet"),
               "planted", 0, {"probe_epochs": 20, "k_sparse_probe_epochs": 5, "max_k_value": 2}, str(tmp_path / "out.json"))
    output = json.loads((tmp_path / "out.json").read_text())
    assert output["eval_result_metrics"]["mean"]["mean_absorption_fraction_score"] is None
    assert "too few" in output["eval_result_unstructured"]["not_evaluated"]


def test_word_absorption_follows_saebench_cases():
    cfg = {"absorption_fraction_probe_cos_threshold": 0.1, "absorption_fraction_max_absorbing_latents": 3,
           "probe_projection_proportion_threshold": 0.4, "full_absorption_probe_cos_threshold": 0.025}
    cos = torch.tensor([1.0, 0.9, 0.05])
    assert word_absorption(torch.tensor([2.0, 0.0, 0.0]), cos, 2.0, [0], cfg) == (0.0, False)  # main carries it all
    assert word_absorption(torch.tensor([0.0, 2.0, 0.0]), cos, 2.0, [0], cfg) == (1.0, True)   # fully absorbed
    fraction, full = word_absorption(torch.tensor([1.0, 1.0, 0.0]), cos, 2.0, [0], cfg)        # partly absorbed
    assert fraction == pytest.approx(0.9 / 1.9) and not full
    assert word_absorption(torch.tensor([0.0, 0.0, 9.0]), cos, 2.0, [0], cfg)[0] == 0.0        # absorber not aligned


def test_feature_split_stops_at_the_first_small_f1_gain():
    by_k = {1: ([7], 0.5), 2: ([7, 3], 0.7), 3: ([7, 3, 9], 0.72), 4: ([7, 3, 9, 1], 0.9)}
    assert split_features(by_k, 0.03) == [7, 3]


def test_prompts_follow_the_in_context_format():
    words = [" apple", " banana", " cherry", " date", " elder", "fig", " grape", " hazel", " iris", " juniper"] * 2
    prompts = build_prompts(sorted(set(words)), {"n_words": 10, "train_fraction": 0.8, "max_icl_examples": 3,
                                                 "prompt_template": "{word} has the first letter:", "seed": 0})
    assert (prompts["split"] == "train").sum() == 8
    row = prompts.iloc[0]
    lines = row["prompt"].split("\n")[1:]
    assert len(lines) == 4 and lines[-1] == f"{row['word']} has the first letter:"
    assert all(line.endswith(answer(line.split(" has")[0])) for line in lines[:-1])
    assert row["word"] not in row["prompt"].rsplit("\n", 1)[0]
    assert first_letter(" Banana") == 1
