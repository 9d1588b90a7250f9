"""Judges that score steered generations, and a registry to build one from its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interpflow.errors import ConfigError
from interpflow.judges.base import Judge, JudgeItem, JudgeScores
from interpflow.judges.offline import OfflineJudge
from interpflow.judges.openai_judge import OpenAIJudge

JUDGES: dict[str, type] = {"offline": OfflineJudge, "openai": OpenAIJudge}


def build_judge(cfg: dict[str, Any], cache_dir: Path) -> Judge:
    """Build the judge named by cfg["name"] (one of JUDGES), passing it the whole config."""
    name = cfg.get("name")
    if not isinstance(name, str) or name not in JUDGES:
        raise ConfigError(
            f"unknown judge name {name!r}; set judge.name to one of: {', '.join(sorted(JUDGES))}"
        )
    return JUDGES[name](cfg, Path(cache_dir))


__all__ = ["JUDGES", "Judge", "JudgeItem", "JudgeScores", "OfflineJudge", "OpenAIJudge", "build_judge"]
