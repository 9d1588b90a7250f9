"""Write planted activations in the layout `cache_activations` gives them, for the SAEBench tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from interpflow.artifacts import write_parquet


def write_cached(folder: Path, name: str, rows: list[dict] | pd.DataFrame, acts: list[np.ndarray]) -> tuple[str, str]:
    """`<name>.safetensors` (every example's tokens back to back) and `<name>.index.parquet` (the rows
    plus n_tokens and offset); returns both paths."""
    index = pd.DataFrame(rows).reset_index(drop=True)
    index["n_tokens"] = [len(a) for a in acts]
    index["offset"] = np.r_[0, np.cumsum(index["n_tokens"])[:-1]]
    acts_path, index_path = folder / f"{name}.safetensors", folder / f"{name}.index.parquet"
    save_file({"acts": torch.tensor(np.concatenate(acts), dtype=torch.float32)}, str(acts_path))
    write_parquet(index, index_path)
    return str(acts_path), str(index_path)
