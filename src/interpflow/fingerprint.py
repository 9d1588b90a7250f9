"""Code fingerprints for Snakemake params: a hash of the package source a rule runs.

Snakemake cannot see package code, so each rule carries the hash of the modules its stage
imports (transitively, inside interpflow). The method registry is not followed into every
method: a method-specific rule adds its own method's module, so editing one method re-runs
only that method's jobs.
"""

from __future__ import annotations

import ast
import hashlib
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


def _statements(body: list[ast.stmt]):
    """Every statement, nested ones included (an import is a statement: expressions need no visit,
    and skipping them makes this ~10x faster than ast.walk, which runs at every Snakemake start)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, field, None) or [])


def _imports(module: str, path: Path) -> set[str]:
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _statements(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
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
