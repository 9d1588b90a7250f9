"""The interface every data source implements, and the columns of the tables it returns.

concepts:     concept_id (int), concept (str), genre (text|code|math), source (str)
train:        concept_id, input, output, label (1/0), category (positive|negative), genre.
              Negatives may be shared: concept_id -1 means "a negative for every concept of this genre".
latent_eval:  concept_id, input, output, label, category (positive|negative|hard_negative), genre
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

TRAIN_COLUMNS = ["concept_id", "input", "output", "label", "category", "genre"]
LATENT_EVAL_COLUMNS = ["concept_id", "input", "output", "label", "category", "genre"]
SHARED_NEGATIVE = -1


class DataSource(Protocol):
    def concepts(self) -> pd.DataFrame | None:
        """The concepts this source knows (None when it generates for any concept list)."""

    def check_ready(self) -> None:
        """Raise ConfigError before any work if the source cannot run (missing file, missing key...)."""

    def train_data(self, concepts: pd.DataFrame) -> pd.DataFrame:
        """Training examples (TRAIN_COLUMNS) for `concepts`."""

    def latent_eval_data(self, concepts: pd.DataFrame) -> pd.DataFrame:
        """Detection evaluation examples (LATENT_EVAL_COLUMNS) for `concepts`, hard negatives included."""

    # Optional: steering_prompts(concepts) -> list[str], one prompt-steering instruction per concept,
    # written by the source's generator model. Sources without one (a data set) leave it out.
