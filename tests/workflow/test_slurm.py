"""The tiny workflow through `snakemake --profile slurm`, by name, on a real one-node SLURM cluster.

The profile is installed with `interpflow install-profile slurm --partition interpflow` into a
temporary XDG config folder, where Snakemake looks profile names up, and Snakemake runs from the
repository root as a user types it; every job must land on that (non-default) partition.

`slurm_cluster.sh` brings the cluster up (Debian's Slurm and munge, installed with apt when
missing) and down. Skipped, with the reason shown, where that cannot work: not root, no apt and no
Slurm, or the cluster does not come up (e.g. no package mirror); under CI=true those fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from safetensors import safe_open

from runs import REPO, snakemake_command

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

HERE = Path(__file__).resolve().parent
CLUSTER = HERE / "slurm_cluster.sh"
# The tiny experiment cut to one shard (2 concepts) and one method: 11 cluster jobs (the pandas-only
# summaries are local rules) in 9 sbatch submissions (the shard's two data jobs travel together, and
# so do the method's training and detection: the profile's groups), each of which parses the workflow
# again; re-planning one shard is checked on the local tiny run. The test node has 2 CPUs: a 4-thread
# job, or a group as wide, would never start, so `--cores 2` bounds the groups.
OVERRIDES = ["experiment=tiny", "concepts.limit=2", "~methods.probe", "~methods.prompt"]
METHODS = ["diffmean"]
# No accounting on the test cluster: job states come from squeue; the first check after 2 s, not 40.
SLURM_ARGS = ["--profile", "slurm", "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]
TIMEOUT_S = 900
PARTITION = "interpflow"  # slurm_cluster.sh's second partition; the cluster's default is `debug`


def cluster(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), action], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def slurm(unavailable):
    if os.geteuid() != 0:
        unavailable("the SLURM test cluster needs root (it installs and starts slurmctld, slurmd and munge)")
    if not shutil.which("sbatch") and not shutil.which("apt-get"):
        unavailable("neither Slurm nor apt-get (to install Debian's Slurm) is available")
    started = cluster("up")
    if started.returncode != 0:
        cluster("down")
        unavailable("the SLURM test cluster did not come up: " + started.stderr[-1500:])
    yield
    cluster("down")


@pytest.fixture(scope="module")
def config_home(tmp_path_factory) -> Path:
    """A user's config folder (XDG_CONFIG_HOME) with the project's slurm profile installed."""
    home = tmp_path_factory.mktemp("xdg_config")
    env = {**os.environ, "XDG_CONFIG_HOME": str(home)}
    install = [sys.executable, "-m", "interpflow.cli", "install-profile", "slurm", "--partition", PARTITION]
    installed = subprocess.run(install, capture_output=True, text=True, env=env, timeout=120)
    assert installed.returncode == 0, installed.stderr
    assert (home / "snakemake" / "slurm" / "config.v8+.yaml").is_file()
    return home


def run_snakemake(workdir: Path, config_home: Path, *args: str) -> subprocess.CompletedProcess:
    command, env = snakemake_command(workdir, OVERRIDES, *SLURM_ARGS, *args, slurm=True)
    env["XDG_CONFIG_HOME"] = str(config_home)
    # Snakemake ignores SIGTERM while it waits on job states; `timeout -k` ends it for sure.
    return subprocess.run(["timeout", "-k", "30", str(TIMEOUT_S), *command], capture_output=True, text=True, env=env,
                          cwd=REPO)


@pytest.fixture(scope="module")
def slurm_run(slurm, config_home, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    result = run_snakemake(workdir, config_home)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, config_home, result.stdout + result.stderr


def test_every_artifact_through_slurm(slurm_run):
    workdir, config_home, log = slurm_run
    assert "Using profile slurm for setting default command line arguments" in log
    submitted = log.count("has been submitted with SLURM jobid")
    single_jobs = len(re.findall(r"^rule \w+:", log, flags=re.M))
    # each entry of the log starts with its time in column 0; a group's jobs are indented under it
    entries = re.split(r"^(?=\[)", log, flags=re.M)
    groups = [(m.group(1), e) for e in entries if (m := re.match(r"\[[^\]]+\] Group job (\w+)", e))]
    grouped = {name: sorted(re.findall(r"^    rule (\w+):", entry, flags=re.M)) for name, entry in groups}
    local_jobs = len(re.findall(r"^localrule \w+:", log, flags=re.M))
    assert grouped == {"data_s0000": ["eval_data", "train_data"], "train_detect": ["detect", "train"]}, grouped
    assert submitted == single_jobs + len(groups) == 9, log[-2000:]
    assert local_jobs >= 4, log[-2000:]  # all, leaderboard and the two evaluations stay on the login node
    run = workdir / "results" / "tiny"
    assert len(pd.read_parquet(run / "concepts.parquet")) == 2
    for shard in ("s0000",):
        for data in ("train", "latent_eval", "steer_prompts"):
            assert len(pd.read_parquet(run / "data" / data / f"{shard}.parquet")) > 0
        for split in ("train", "latent_eval"):
            with safe_open(str(run / f"acts/tiny_llama/L2/{split}/{shard}.safetensors"), "pt") as f:
                assert f.get_tensor("acts").shape[1] == 64
        assert {"max_score", "label"} <= set(pd.read_parquet(run / f"latent/tiny_llama/L2/diffmean/{shard}.parquet").columns)
        for method in METHODS:
            judged = pd.read_parquet(run / f"judged/tiny_llama/L2/{method}/{shard}.parquet")
            assert {"generation", "concept_score", "fluency_score"} <= set(judged.columns) and len(judged) > 0
    assert len(pd.read_parquet(run / "eval/detection/tiny_llama/L2/diffmean.parquet")) == 2
    board = pd.read_csv(run / "leaderboard.csv")
    assert sorted(board["method"]) == METHODS
    assert (run / "plots" / "steering_vs_factor.png").stat().st_size > 0
    again = run_snakemake(workdir, config_home, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]


def test_model_jobs_got_a_gpu_and_fell_back_to_cpu(slurm_run):
    """Model jobs asked for a GPU (sbatch --gpus=1); the node's fake GPUs have no CUDA, so they ran on the CPU.
    Every job ran on the partition the installed profile names."""
    workdir, _, log = slurm_run
    ids = ",".join(re.findall(r"submitted with SLURM jobid (\d+)", log))  # this run's jobs only
    jobs = subprocess.run(["squeue", "-h", "--states=all", "-j", ids, "-O",
                           "Comment:200,tres-per-job:40,State:20,Partition:20"], capture_output=True, text=True).stdout
    rows = [line.split() for line in jobs.splitlines() if line.startswith("rule_")]
    # a single job's comment is rule_<rule>_wildcards_..., a group's rule_<group>_<its rules>
    asked = {comment.split("_wildcards")[0][len("rule_"):]: tres for comment, tres, *_ in rows}
    assert all(state == "COMPLETED" for _, _, state, _ in rows), jobs
    assert {partition for *_, partition in rows} == {PARTITION}, jobs
    assert "gpu" in asked["cache_activations"] and "gpu" in asked["steer"], asked
    assert "gpu" not in asked["judge"], asked
    assert not {"evaluate_detection", "evaluate_steering", "leaderboard"} & set(asked), "local rules stay off the cluster"
    assert "gpu" not in asked["train_detect_detect_train"], "diffmean reads activations, not the model: no GPU"
    logs = workdir / "results" / "tiny" / "logs" / "cache_activations" / "tiny_llama" / "L2"
    placed = {line for log in logs.rglob("*.log") for line in log.read_text().splitlines() if "device" in line}
    # each job saw the GPU SLURM allocated to it (fake here, so no CUDA) and ran on the CPU
    assert placed and all(re.search(r"device cpu \(CUDA_VISIBLE_DEVICES=[01]\)", line) for line in placed), placed
