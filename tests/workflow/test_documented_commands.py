"""Every command the docs mark runnable still works: each runs in dry-run form.

A block is marked by the line `<!-- runnable -->` right before its ```bash fence (docs/contributing.md,
"Documented commands are tested"), in docs/ or README.md. `snakemake ...` runs as `snakemake -n` with
its options and overrides on the real Snakefile in a fresh folder, so a renamed config key, experiment,
rule or profile option fails here; `interpflow ... --help` runs as written.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from runs import REPO, snakemake_command

pytestmark = pytest.mark.workflow

MARKER = "<!-- runnable -->"
PAGES = [*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md"]
CORES = {"-c", "--cores", "-j", "--jobs"}  # the dry run sets its own


def marked_blocks(page: Path) -> list[tuple[int, list[str]]]:
    """(line number, lines) of each block marked runnable; markers inside another fence are examples."""
    lines = page.read_text().splitlines()
    blocks, fence = [], ""
    for number, line in enumerate(lines):
        text = line.strip()
        if fence:
            if text.startswith(fence) and set(text) == {"`"}:
                fence = ""
            continue
        if text.startswith("```"):
            fence = text[: len(text) - len(text.lstrip("`"))]
        elif text == MARKER:
            opening = lines[number + 1].strip() if number + 1 < len(lines) else ""
            assert opening == "```bash", f"{page}:{number + 1}: {MARKER} must come right before a ```bash block"
            end = next(i for i in range(number + 2, len(lines)) if lines[i].strip() == "```")
            blocks.append((number + 1, lines[number + 2:end]))
    return blocks


def commands(block: list[str]) -> list[list[str]]:
    """The block's commands as words: `\\` continues a line, `#` starts a comment."""
    joined = "\n".join(block).replace("\\\n", " ")
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def documented_commands() -> dict[tuple[str, ...], str]:
    """Each distinct runnable command -> where it is first written (page:line)."""
    found: dict[tuple[str, ...], str] = {}
    for page in PAGES:
        for number, block in marked_blocks(page):
            for words in commands(block):
                found.setdefault(tuple(words), f"{page.relative_to(REPO)}:{number}")
    return found


def snakemake_dry_run(words: tuple[str, ...], workdir: Path) -> subprocess.CompletedProcess:
    """The command's options and overrides, as `snakemake -n` on this checkout's Snakefile in `workdir`."""
    args, overrides, rest = [], [], list(words[1:])
    while rest:
        word = rest.pop(0)
        if word in CORES:
            rest.pop(0)
        elif word.startswith("-c") and word[2:].isdigit() or word in ("-n", "--dry-run", "-p"):
            continue
        elif word == "--config":
            while rest and not rest[0].startswith("-"):
                key, _, value = rest.pop(0).partition("=")
                assert key == "overrides", f"only --config overrides=[...] can be dry-run, not {key!r}"
                overrides += yaml.safe_load(value)
        else:
            args.append(word)
    command, env = snakemake_command(workdir, overrides, "-n", *args)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def interpflow_help(words: tuple[str, ...]) -> subprocess.CompletedProcess:
    assert "--help" in words, "mark only `interpflow ... --help` commands runnable: they cannot dry-run"
    command = [str(Path(sys.executable).parent / "interpflow"), *words[1:]]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


DOCUMENTED = documented_commands()


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """All documented commands dry-run two at a time (each Snakemake dry run is a few seconds of parsing)."""
    def run(words: tuple[str, ...]) -> subprocess.CompletedProcess:
        if words[0] == "snakemake":
            return snakemake_dry_run(words, tmp_path_factory.mktemp("documented"))
        if words[0] == "interpflow":
            return interpflow_help(words)
        raise AssertionError(f"cannot dry-run {words[0]!r}: mark only snakemake and `interpflow --help` commands")

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(DOCUMENTED, pool.map(run, DOCUMENTED)))


def test_the_docs_mark_commands_of_every_benchmark():
    marked = " ".join(" ".join(words) for words in DOCUMENTED)
    for experiment in ("experiment=demo", "experiment=saebench", "experiment=interpbench", "profiles/slurm"):
        assert experiment in marked, f"no runnable command with {experiment} in docs/ or README.md"


@pytest.mark.parametrize("words", list(DOCUMENTED), ids=[DOCUMENTED[w] for w in DOCUMENTED])
def test_documented_command_dry_runs(words, dry_runs):
    result = dry_runs[words]
    output = result.stdout + result.stderr
    where = f"{DOCUMENTED[words]}: {shlex.join(words)}"
    assert result.returncode == 0, f"{where}\n{output[-3000:]}"
    if words[0] == "snakemake":
        assert "This was a dry-run" in output or "Nothing to be done" in output, f"{where}\n{output[-3000:]}"
    else:
        assert "usage:" in output, f"{where}\n{output[-3000:]}"
