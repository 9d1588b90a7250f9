"""Code fingerprints: stable hashes of the package source a stage imports, registry not followed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import interpflow
from interpflow.fingerprint import _closure, _imports, _source_path, code_fingerprint
from interpflow.judges import judge_module

METHOD_MODULES = [f"interpflow.methods.{m}" for m in ("diffmean", "pca", "lat", "probe", "prompt")]


def test_fingerprint_is_stable_and_short():
    first = code_fingerprint("interpflow.stages.train")
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    _closure.cache_clear()  # recomputed from the files, not the cache
    assert code_fingerprint("interpflow.stages.train") == first


def test_fingerprint_ignores_argument_order_and_repeats():
    a = code_fingerprint("interpflow.stages.train", "interpflow.methods.pca")
    b = code_fingerprint("interpflow.methods.pca", "interpflow.stages.train", "interpflow.methods.pca")
    assert a == b


def test_train_closure_does_not_follow_the_registry():
    closure = _closure("interpflow.stages.train")
    assert "interpflow.stages.train" in closure
    assert "interpflow.methods" in closure  # the registry itself
    assert "interpflow.methods.base" in closure  # the interface every method shares
    for module in METHOD_MODULES:
        assert module not in closure


def test_each_method_has_its_own_fingerprint():
    prints = {m: code_fingerprint(m) for m in METHOD_MODULES}
    assert len(set(prints.values())) == len(METHOD_MODULES)
    assert code_fingerprint("interpflow.methods.pca") != code_fingerprint("interpflow.methods.diffmean")
    # adding a method to a stage's fingerprint changes it
    train = code_fingerprint("interpflow.stages.train")
    assert code_fingerprint("interpflow.stages.train", "interpflow.methods.pca") != train


def test_method_closure_includes_base():
    closure = _closure("interpflow.methods.pca")
    assert {"interpflow.methods.pca", "interpflow.methods.base"} <= closure
    assert "interpflow.methods.diffmean" not in closure


def test_detect_closure_contains_artifacts():
    closure = _closure("interpflow.stages.detect")
    assert "interpflow.artifacts" in closure
    assert "interpflow.stages.detect" in closure
    assert "interpflow.models.loading" in closure  # IG, IxG and ReFT-r1 score through the model
    assert not {m for m in closure if m.startswith(("interpflow.models.generation", "interpflow.judges"))}


def test_closure_is_transitive():
    closure = _closure("interpflow.stages.activations")
    # activations -> models.hooks -> models.architectures -> errors
    assert {"interpflow.models.hooks", "interpflow.models.architectures", "interpflow.errors"} <= closure


def test_closure_holds_only_real_modules():
    for name in _closure("interpflow.stages.train") | _closure("interpflow.stages.activations"):
        assert _source_path(name) is not None, name


def test_imports_resolve_relative_and_skip_outside_packages(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "import os\nimport interpflow.errors\nfrom . import sibling\nfrom ..models import hooks\n"
        "from numpy import array\n"
    )
    found = _imports("interpflow.stages.mod", source)
    assert "interpflow.errors" in found
    assert "interpflow.stages.sibling" in found
    assert "interpflow.models" in found and "interpflow.models.hooks" in found
    assert not any(name.startswith(("os", "numpy")) for name in found)


def test_source_path_of_package_and_non_module():
    assert _source_path("interpflow.methods").name == "__init__.py"
    assert _source_path("interpflow.artifacts").name == "artifacts.py"
    assert _source_path("interpflow.methods.build_method") is None


def imports_by_ast(module: str, path) -> set[str]:
    """What Python itself reads as the module's interpflow imports (the reference for _imports)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if alias.name != "*"}
    return {name for name in found if name.split(".")[0] == "interpflow"}


def test_the_text_scan_finds_what_the_ast_finds_in_every_module():
    root = Path(interpflow.__file__).parent
    modules = list(root.rglob("*.py"))
    assert len(modules) > 100
    for path in modules:
        name = ".".join(("interpflow", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        assert _imports(name, path) == imports_by_ast(name, path), path


def test_the_text_scan_reads_multi_line_and_aliased_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from interpflow.errors import (\n    ConfigError,\n    InterpflowError as Base,  # why\n)\n"
        "import interpflow.config as config, interpflow.inputs\n"
        "def f():\n    from .stages import train\n"
    )
    assert _imports("interpflow.x.mod", source) == {
        "interpflow.errors", "interpflow.errors.ConfigError", "interpflow.errors.InterpflowError",
        "interpflow.config", "interpflow.inputs", "interpflow.x.stages", "interpflow.x.stages.train"}


def test_the_judge_rule_fingerprints_the_configured_judge():
    """The judge registry names its judges by string (no import), so the rule adds the judge's module."""
    assert "interpflow.judges.offline" not in _closure("interpflow.stages.judge")
    offline = _closure("interpflow.stages.judge") | _closure(judge_module("offline"))
    assert {"interpflow.judges.offline", "interpflow.embeddings"} <= offline
    assert code_fingerprint("interpflow.stages.judge", judge_module("offline")) != code_fingerprint(
        "interpflow.stages.judge", judge_module("openai"))
