"""Judges that score steered generations, and a registry to build one from its config."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from interpflow.errors import ConfigError
from interpflow.judges.base import Judge, JudgeItem, JudgeScores

# name -> "module:class", imported only when that judge is built: the offline judge's jobs need not
# import the OpenAI client (about a second of every judge job's start-up)
JUDGES: dict[str, str] = {
    "offline": "interpflow.judges.offline:OfflineJudge",
    "openai": "interpflow.judges.openai_judge:OpenAIJudge",
}


def judge_module(name: str) -> str:
    """The module of judge `name`: the judge rule's code fingerprint adds it, since the registry
    names it by string rather than importing it."""
    return JUDGES[name].partition(":")[0]


def judge_class(name: str) -> type:
    return getattr(importlib.import_module(judge_module(name)), JUDGES[name].partition(":")[2])


def build_judge(cfg: dict[str, Any], cache_dir: Path) -> Judge:
    """Build the judge named by cfg["name"] (one of JUDGES), passing it the whole config."""
    name = cfg.get("name")
    if not isinstance(name, str) or name not in JUDGES:
        raise ConfigError(
            f"unknown judge name {name!r}; set judge.name to one of: {', '.join(sorted(JUDGES))}"
        )
    return judge_class(name)(cfg, Path(cache_dir))


__all__ = ["JUDGES", "Judge", "JudgeItem", "JudgeScores", "build_judge", "judge_class", "judge_module"]
