"""Code fingerprints for Snakemake params: a hash of the package source a rule runs.

Snakemake cannot see package code, so each rule carries the hash of the modules its stage
imports (transitively, inside interpflow). The method registry is not followed into every
method: a method-specific rule adds its own method's module, so editing one method re-runs
only that method's jobs.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

REGISTRY = "interpflow.methods"


PACKAGE_ROOT = Path(__file__).resolve().parent


def _source_path(module: str) -> Path | None:
    """The .py file of an interpflow module, or None for names that are not modules (e.g. a class)."""
    base = PACKAGE_ROOT.joinpath(*module.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# An import statement at the start of a line: `import a.b as c, d` or `from .x import (y, z)`.
# Scanning the text is ~30x faster than ast.parse over the package, which runs at every Snakemake
# start (and in every SLURM job); a unit test checks it finds what the AST finds in every module.
IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<base>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^\n#;]*)"
    r"|import[ \t]+(?P<modules>[^\n#;]*))",
    re.MULTILINE,
)


def _names(text: str) -> list[str]:
    """The imported names of `a as b, c` or `(a,  # comment\n b)`, without aliases."""
    text = re.sub(r"#[^\n]*", "", text).strip("() \t\n")
    return [part.split()[0] for part in text.split(",") if part.strip()]


def _imports(module: str, path: Path) -> set[str]:
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for match in IMPORT.finditer(path.read_text()):
        if match["modules"] is not None:
            found |= set(_names(match["modules"]))
            continue
        base = match["base"].lstrip(".")
        level = len(match["base"]) - len(base)
        if level:
            parent = package.rsplit(".", level - 1)[0] if level > 1 else package
            base = f"{parent}.{base}".rstrip(".")
        found.add(base)
        found |= {f"{base}.{name}" for name in _names(match["names"])}
    return {name for name in found if name.split(".")[0] == "interpflow"}


@lru_cache(maxsize=None)
def _closure(module: str) -> frozenset[str]:
    seen: set[str] = set()
    stack = [module]
    while stack:
        current = stack.pop()
        path = _source_path(current) if current not in seen else None
        if path is None:
            continue
        seen.add(current)
        for imported in _imports(current, path):
            if current == REGISTRY and imported.startswith(REGISTRY + ".") and imported != REGISTRY + ".base":
                continue
            stack.append(imported)
    return frozenset(seen)


def code_fingerprint(*modules: str) -> str:
    """sha256 (16 hex digits) of the sources of `modules` and everything they import from interpflow."""
    names = sorted(set().union(*(_closure(m) for m in modules)))
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(_source_path(name).read_bytes())
    return digest.hexdigest()[:16]
