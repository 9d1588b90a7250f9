"""`interpflow install-profile`: the copy lands where Snakemake finds a profile by name, fills the
account and partition into the profile's default resources, and never replaces a user's profile
unless told (--force) or answered yes at a terminal. The SLURM workflow test
(tests/workflow/test_slurm.py) runs `snakemake --profile slurm` by name after installing it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest
import yaml

from interpflow.cli import main
from interpflow.errors import ConfigError
from interpflow.profiles import PROFILES, install_profile

CONFIG = "config.v8+.yaml"


def read_profile(folder) -> dict:
    return yaml.safe_load((folder / CONFIG).read_text())


def test_installed_where_snakemake_finds_the_name(tmp_path, monkeypatch):
    from snakemake.cli import get_profile_dir

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)  # not the repository root: the name must come from the config folder
    assert get_profile_dir("slurm") is None
    target = install_profile("slurm")
    assert target == tmp_path / "config" / "snakemake" / "slurm"
    assert get_profile_dir("slurm") == (target, target / CONFIG)
    assert read_profile(target) == read_profile(PROFILES / "slurm")  # an unfilled copy is the profile itself


def test_account_and_partition_fill_the_default_resources(tmp_path):
    target = install_profile("slurm", account="acme", partition="gpu,cpu", dest=str(tmp_path))
    installed, source = read_profile(target), read_profile(PROFILES / "slurm")
    # strings Snakemake evaluates as Python: quoted, so they stay strings whatever the name
    assert installed["default-resources"].pop("slurm_account") == "'acme'"
    assert installed["default-resources"].pop("slurm_partition") == "'gpu,cpu'"
    assert installed == source  # nothing else changed
    text = (target / CONFIG).read_text()
    assert "  slurm_partition: \"'gpu,cpu'\"       # your CPU partition" in text  # its comment kept


def test_only_the_partition_leaves_the_account_commented_out(tmp_path):
    target = install_profile("slurm", partition="debug", dest=str(tmp_path))
    assert read_profile(target)["default-resources"]["slurm_partition"] == "'debug'"
    assert "slurm_account" not in read_profile(target)["default-resources"]


@pytest.mark.parametrize("name", ["a b", "x'y", "--gres=gpu", ""])
def test_a_name_slurm_would_not_take_is_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="is not a SLURM name"):
        install_profile("slurm", partition=name, dest=str(tmp_path))
    assert not (tmp_path / "slurm").exists()


def test_unknown_profile_and_a_profile_without_slurm_keys(tmp_path):
    with pytest.raises(ConfigError, match="the project's profiles: local, slurm"):
        install_profile("slurn", dest=str(tmp_path))
    with pytest.raises(ConfigError, match="no commented-out `# slurm_account"):
        install_profile("local", account="acme", dest=str(tmp_path))
    assert not (tmp_path / "local").exists()


def users_own_profile(folder):
    own = folder / "slurm"
    own.mkdir(parents=True)
    (own / CONFIG).write_text("executor: slurm\njobs: 7\n")
    (own / "notes.txt").write_text("mine")
    return own


def test_a_users_profile_is_not_replaced_without_force(tmp_path, capsys):
    own = users_own_profile(tmp_path)
    code = main(["install-profile", "slurm", "--partition", "debug", "--dest", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and f"{own} already exists" in err and "--force" in err and "Traceback" not in err
    assert (own / CONFIG).read_text() == "executor: slurm\njobs: 7\n" and (own / "notes.txt").exists()


def test_force_replaces_it_whole(tmp_path):
    own = users_own_profile(tmp_path)
    assert main(["install-profile", "slurm", "--partition", "debug", "--dest", str(tmp_path), "--force"]) == 0
    assert read_profile(own)["jobs"] == read_profile(PROFILES / "slurm")["jobs"]
    assert sorted(p.name for p in own.iterdir()) == sorted(p.name for p in (PROFILES / "slurm").iterdir())


@pytest.mark.parametrize("answer, replaced", [("y\n", True), ("\n", False)])
def test_at_a_terminal_it_asks(tmp_path, answer, replaced):
    own = users_own_profile(tmp_path)
    terminal, reply = pty.openpty()
    command = [sys.executable, "-m", "interpflow.cli", "install-profile", "slurm", "--dest", str(tmp_path)]
    process = subprocess.Popen(command, stdin=reply, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    os.write(terminal, answer.encode())
    out, err = process.communicate(timeout=60)
    os.close(terminal), os.close(reply)
    assert (process.returncode == 0) == replaced, err
    assert ((own / "notes.txt").exists()) != replaced
