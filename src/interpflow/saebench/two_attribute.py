"""A small two-attribute text set written for this project, for SAEBench's SCR evaluation offline.

Each text is a short biography with two attributes planted by its template: a profession (one of
a pair, e.g. professor / nurse: what the person does, on what, where) and a gender (title, first
name, pronouns, man / woman). SAEBench reads
bias-in-bios for the same purpose; its texts are real biographies, ours are templated, so SCR
numbers on this set rank SAEs against each other and are not comparable with SAEBench's paper.

Rows: example_id, split (train|test), pair, profession, gender, input (the instruction the
biography answers), output (the biography), plus the concept-data columns caching expects
(concept_id = pair index, label = 1 for the pair's first profession, category, genre).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from interpflow.artifacts import write_parquet
from interpflow.errors import ConfigError

NAMES = {
    "male": ["James", "Robert", "Michael", "David", "Daniel", "Thomas", "Mark", "Paul", "Steven", "Andrew", "Kevin",
             "Brian", "George", "Edward", "Peter", "Henry", "Samuel", "Patrick", "Frank", "Gregory"],
    "female": ["Mary", "Linda", "Susan", "Karen", "Nancy", "Lisa", "Sarah", "Emily", "Laura", "Rachel", "Helen",
               "Anna", "Julia", "Grace", "Alice", "Claire", "Diana", "Hannah", "Olivia", "Rose"],
}
PRONOUNS = {"male": ("He", "his", "him", "man"), "female": ("She", "her", "her", "woman")}
TITLES = {"male": "Mr.", "female": "Ms."}
# Per profession: what the person does, on what, and where; the profession's own name never appears.
PROFESSIONS = {
    "professor": (["teaches graduate seminars on", "lectures undergraduates on", "supervises doctoral theses on",
                   "publishes peer-reviewed papers on"],
                  ["medieval history", "organic chemistry", "labour economics", "number theory"],
                  ["at a state university", "at a research institute", "at the faculty of sciences", "at a liberal arts college"]),
    "nurse": (["cares for patients recovering from", "monitors the vital signs of patients after",
               "gives medication to patients with", "changes the dressings of patients after"],
              ["heart surgery", "hip fractures", "severe burns", "pneumonia"],
              ["in the intensive care unit", "on the night shift at a city hospital", "at a community clinic",
               "in the emergency ward"]),
    "architect": (["designs office towers built from", "draws plans for houses made of", "renovates old buildings with",
                   "designs public libraries clad in"],
                  ["steel and glass", "timber", "brick and stone", "concrete"],
                  ["for a firm downtown", "in a small design studio", "for the city planning office", "for clients abroad"]),
    "journalist": (["reports on", "writes newspaper columns about", "interviews politicians about",
                    "investigates"],
                   ["local elections", "corruption in city hall", "foreign trade", "the housing crisis"],
                   ["for a national newspaper", "for a radio news station", "for an online magazine", "for a wire agency"]),
}
INSTRUCTION = "Write a two-sentence biography of a person."


def biography(name: str, gender: str, profession: str, rng: np.random.Generator) -> str:
    """Gender is said seven times (title, name, pronouns, man / woman) and the profession only in one
    clause, never by its name (bias-in-bios drops the sentence with the title too), to give the
    spurious attribute a chance against the profession's many content words."""
    subject, possessive, objective, noun = PRONOUNS[gender]
    does, topics, where = PROFESSIONS[profession]
    return (f"{TITLES[gender]} {name} {rng.choice(does)} {rng.choice(topics)} {rng.choice(where)}. "
            f"{subject} is a quiet {noun}; friends call {objective} a kind {noun}, and {subject.lower()} loves {possessive} garden.")


def two_attribute_texts(pairs: list[list[str]], per_cell: dict[str, int], seed: int) -> pd.DataFrame:
    """Every (profession of a pair, gender) cell gets per_cell[split] biographies per split; the
    splits use disjoint first names, so no test text shares a name with a training one."""
    unknown = sorted({p for pair in pairs for p in pair} - set(PROFESSIONS))
    if unknown:
        raise ConfigError(f"two_attribute: unknown professions {unknown}; choose from {sorted(PROFESSIONS)}")
    rng = np.random.default_rng(seed)
    names = {g: list(rng.permutation(n)) for g, n in NAMES.items()}
    split_names = {"train": {g: n[: len(n) * 3 // 4] for g, n in names.items()},
                   "test": {g: n[len(n) * 3 // 4 :] for g, n in names.items()}}
    rows = []
    for pair_index, pair in enumerate(pairs):
        for split, count in per_cell.items():
            for profession, gender in itertools.product(pair, NAMES):
                for _ in range(count):
                    rows.append({"split": split, "pair": pair_index, "profession": profession, "gender": gender,
                                 "input": INSTRUCTION,
                                 "output": biography(rng.choice(split_names[split][gender]), gender, profession, rng)})
    frame = pd.DataFrame(rows)
    frame.insert(0, "example_id", range(len(frame)))
    frame["concept_id"] = frame["pair"]
    frame["label"] = [int(p == pairs[i][0]) for p, i in zip(frame["profession"], frame["pair"])]
    frame["category"] = np.where(frame["label"] == 1, "positive", "negative")
    frame["genre"] = "text"
    return frame


def saebench_texts(pairs: list[str], out: str, train_per_cell: int = 60, test_per_cell: int = 30, seed: int = 0) -> None:
    """Write the two-attribute biographies (SCR's offline data) to `out`; pairs as "professor/nurse"."""
    split_pairs = [p.split("/") for p in pairs]
    malformed = [p for p, parts in zip(pairs, split_pairs) if len(parts) != 2]
    if malformed:
        raise ConfigError(f"two_attribute: pairs are written 'first/second', got {malformed}")
    frame = two_attribute_texts(split_pairs, {"train": train_per_cell, "test": test_per_cell}, seed)
    write_parquet(frame, out)
    print(f"two_attribute: {len(frame)} biographies, pairs {pairs}")
