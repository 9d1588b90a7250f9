"""The first-letter prompts of SAEBench's `absorption` evaluation, and their cached activations.

Words are the model's own single-token, letters-only vocabulary entries (a leading space allowed),
as SAEBench's `get_alpha_tokens`; a seeded sample of `n_words` of them is split 80/20 into train and
test words. Each word gets one in-context prompt: `max_icl_examples` other words of the same split,
each as the template followed by its answer, then the word's own template without the answer:

    <bos>
     house has the first letter: H
     garden has the first letter: G
     ...
     table has the first letter:

The activation read is the residual stream after block L at the word's token (SAEBench's
`prompt_token_pos`, found here per prompt rather than assumed). A prompt in which the word does
not come out as its own token is dropped and counted.

Artifact: `<out>` with `acts` [n_prompts, d_model] and `<out_index>` with word, letter (0-25),
split (train/test), one row per prompt, in the same order.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
import torch

from interpflow.artifacts import write_parquet, write_tensors
from interpflow.errors import ConfigError
from interpflow.models.architectures import check_layer
from interpflow.models.formatting import ScoredTokens
from interpflow.models.loading import load_model
from interpflow.stages.activations import iter_activations

DEFAULTS = {
    "n_words": 4000,             # SAEBench: the whole alpha vocabulary (tens of thousands of words)
    "prompt_template": "{word} has the first letter:",  # SAEBench's
    "max_icl_examples": 10,      # SAEBench's
    "train_fraction": 0.8,       # SAEBench's
    "batch_size": 32,
    "seed": 42,                  # SAEBench's random_seed
}
LETTERS = string.ascii_lowercase


def alpha_words(tokenizer) -> list[str]:
    """Every vocabulary entry that is one or more ASCII letters, optionally after one space."""
    words = set()
    for token in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))):
        if token is None:
            continue
        text = tokenizer.convert_tokens_to_string([token])
        bare = text[1:] if text.startswith(" ") else text
        if bare and all(c in string.ascii_letters for c in bare):
            words.add(text)
    return sorted(words)


def first_letter(word: str) -> int:
    return LETTERS.index(word.strip()[0].lower())


def answer(word: str) -> str:
    return " " + word.strip()[0].upper()


def icl_prompt(word: str, examples: list[str], template: str) -> str:
    shots = [template.format(word=e) + answer(e) for e in examples]
    return "\n" + "\n".join(shots + [template.format(word=word)])


def build_prompts(words: list[str], cfg: dict) -> pd.DataFrame:
    """word, letter, split, prompt for a seeded sample of `words`."""
    rng = np.random.default_rng(cfg["seed"])
    chosen = [words[i] for i in rng.permutation(len(words))[: cfg["n_words"]]]
    cut = int(len(chosen) * cfg["train_fraction"])
    rows = []
    for split, pool in (("train", chosen[:cut]), ("test", chosen[cut:])):
        for position, word in enumerate(pool):
            others = [i for i in rng.permutation(len(pool))[: cfg["max_icl_examples"] + 1] if i != position]
            examples = [pool[i] for i in others[: cfg["max_icl_examples"]]]
            rows.append({"word": word, "letter": first_letter(word), "split": split,
                         "prompt": icl_prompt(word, examples, cfg["prompt_template"])})
    return pd.DataFrame(rows)


def word_positions(tokenizer, prompts: pd.DataFrame, template: str) -> tuple[list[list[int]], list[int]]:
    """Token ids of each prompt (BOS first when the model has one) and the word's position, -1 where
    the word is not a token of its own in context."""
    suffix = template.split("{word}", 1)[1]
    n_suffix = len(tokenizer(suffix, add_special_tokens=False).input_ids)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids, positions = [], []
    for word, prompt in zip(prompts["word"], prompts["prompt"]):
        tokens = bos + tokenizer(prompt, add_special_tokens=False).input_ids
        at = len(tokens) - n_suffix - 1
        word_ids = tokenizer(word, add_special_tokens=False).input_ids
        ids.append(tokens)
        positions.append(at if len(word_ids) == 1 and tokens[at] == word_ids[0] else -1)
    return ids, positions


def first_letter_acts(model_dir: str, model_cfg: dict, layer: int, eval_cfg: dict, out: str, out_index: str) -> None:
    """Cache the word-token activations after block `layer` of the first-letter prompts."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    check_layer(model, layer)
    words = alpha_words(tokenizer)
    if len(words) < 26:
        raise ConfigError(f"absorption: model {model_cfg['name']!r} has only {len(words)} single-token alphabetic words; "
                          "the first-letter task needs a word-level vocabulary")
    prompts = build_prompts(words, cfg)
    ids, positions = word_positions(tokenizer, prompts, cfg["prompt_template"])
    keep = [i for i, p in enumerate(positions) if p >= 0]
    examples = [ScoredTokens(ids[i][: positions[i] + 1], positions[i]) for i in keep]
    acts = torch.empty(len(keep), model.config.hidden_size)
    for row, hidden in iter_activations(model, tokenizer, layer, examples, cfg["batch_size"]):
        acts[row] = hidden[0]
    index = prompts.iloc[keep].reset_index(drop=True)
    write_tensors({"acts": acts.contiguous()}, out, {"model": model_cfg["name"], "layer": str(layer)})
    write_parquet(index, out_index)
    print(f"first_letter: {len(words)} alphabetic tokens, {len(prompts)} prompts, {len(prompts) - len(keep)} dropped "
          f"(word split in context), {int((index['split'] == 'train').sum())} train / {int((index['split'] == 'test').sum())} test")
