"""The command line: --version, help on stdout with every option described, and one clear line
(no traceback) for a missing input, a damaged one or malformed JSON."""

from __future__ import annotations

import subprocess
import sys

import pytest

from interpflow.cli import STAGES, main, stage_function, stage_parser


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interpflow.cli", *args], capture_output=True, text=True, timeout=120)


def test_version_and_help_go_to_stdout():
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("interpflow ")
    usage = run("--help")
    assert usage.returncode == 0 and "stages:" in usage.stdout and usage.stderr == ""
    unknown = run("detekt")
    assert unknown.returncode == 2 and "unknown stage 'detekt'" in unknown.stderr


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_option_of_every_stage_has_help(stage):
    parser = stage_parser(stage, stage_function(stage))
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert options, stage
    assert all(a.help for a in options), [a.dest for a in options if not a.help]


def test_missing_input_is_one_line(tmp_path, capsys):
    code = main(["evaluate-steering", "--model", "m", "--layer", "1", "--method", "x", "--judged",
                 str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "o.parquet"), "--out-curve", str(tmp_path / "c.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and "missing input" in err and "nope.parquet" in err and "Traceback" not in err


def test_damaged_input_is_one_line(tmp_path):
    bad = tmp_path / "judged.parquet"
    bad.write_text("not a parquet file")
    result = run("evaluate-steering", "--model", "m", "--layer", "1", "--method", "x", "--judged", str(bad),
                 "--out", str(tmp_path / "o.parquet"), "--out-curve", str(tmp_path / "c.parquet"))
    assert result.returncode == 2 and "damaged or of the wrong kind" in result.stderr
    assert f"--forcerun {bad}`" in result.stderr  # tests/workflow/faults/test_damaged_artifact.py runs it
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_malformed_json_option_names_the_option():
    result = run("detect", "--method-cfg", "{name: diffmean}", "--concepts", "c", "--shard", "s", "--data", "d", "--out", "o")
    assert result.returncode == 2 and "--method-cfg" in result.stderr and "not valid JSON" in result.stderr
