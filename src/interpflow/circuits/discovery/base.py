"""What every discovery method shares: its config from a plain dict, and the patcher it runs on."""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C")


def config_from(cls: type[C], params: dict[str, Any] | None, method: str) -> C:
    """``cls(**params)``, refusing keys the method does not have (a typo would silently do nothing)."""
    params = dict(params or {})
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{method}: unknown parameter(s) {unknown}; it takes {sorted(known)}")
    for key in ("thresholds", "lambdas"):
        if key in params:
            params[key] = tuple(float(v) for v in params[key])
    return cls(**params)
