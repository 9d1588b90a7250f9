"""Kill anything, lose nothing: runs of each benchmark with faults struck into them in turn (a job's
process or Snakemake itself killed, with SIGKILL or SIGTERM, as a crash, an OOM kill, a SLURM time
limit or a lost login node would), resumed after each the way docs/clusters.md says, and the finished run
compared with the uninterrupted one (faulty_runs.py). Every fault must land, or the test fails.

Every artifact must equal the uninterrupted run's: tables by content, tensors by value, JSON and
text exactly. Only what records time differs (wall times, tokens per second, SAEBench's eval_id: see
faulty_runs.TIMING_KEYS), and plots are compared by existence. No temporary file or checkpoint may
be left anywhere. The SAE and circuit runs start from copies of the shared runs with one SAE or one
circuit task deleted, and build it again through a Snakemake target.

The API half judges the same run through an OpenAI-compatible server (the stub, which counts what
it is asked), kills judge jobs mid-way, and checks that no answered question is asked again.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import subprocess

import pytest

from faulty_runs import Fault, assert_same, assert_same_artifacts, artifacts, leftovers, run_with_faults
from interpflow.providers.stub_server import StubChatServer
from runs import copy_run, snakemake_command

pytestmark = pytest.mark.workflow

# experiment=tiny from nothing, one fault per stage kind. A run strikes the first fault of this list
# whose stage runs, so the stages with fewest and shortest jobs come first: when two stages run at
# once, the one whose jobs could otherwise all finish before its turn is struck. eval-data is no
# target: its two sub-second jobs run beside train-data's (the same code, stages/data.py), and
# whichever of the two was struck second would find its jobs finished. Snakemake itself is killed
# outright during steer, whose six jobs leave it time to be.
SHORT_JOB = (0.0, 0.1)  # the leaderboard's and the shipped data's jobs end within a second on a quiet machine
TINY_FAULTS = [
    Fault("prepare-model", signal.SIGKILL),
    Fault("leaderboard", signal.SIGTERM, delay_s=SHORT_JOB),
    Fault("train-data", signal.SIGTERM, delay_s=SHORT_JOB),
    Fault("evaluate-detection", signal.SIGTERM, snakemake=True),
    Fault("detect", signal.SIGKILL),
    Fault("train", signal.SIGTERM),
    Fault("cache-activations", signal.SIGKILL),
    Fault("steer", signal.SIGTERM),
    Fault("steer", signal.SIGKILL, snakemake=True),
    Fault("judge", signal.SIGKILL),
]


def test_killed_jobs_and_snakemake_resume_to_the_uninterrupted_result(tiny_run, tmp_path):
    workdir = tmp_path / "faulty"
    workdir.mkdir()
    struck = run_with_faults(workdir, tiny_run.overrides, TINY_FAULTS, random.Random(0))
    print("struck:", ", ".join(map(str, struck)))
    assert_same_artifacts(workdir / "results/tiny", tiny_run.results)
    assert not leftovers(workdir)


def test_killed_sae_jobs_and_snakemake_resume_to_the_uninterrupted_result(tiny_full_run, tmp_path):
    """An SAE of the SAE benchmark trained again from nothing and scored by SAEBench's core
    evaluation: Snakemake killed outright while the SAE trains, then that training killed, then the
    core evaluation stopped with SIGTERM."""
    run = copy_run(tiny_full_run, tmp_path / "sae")
    sae, core = run.results / "sae/tiny_llama/L2/topk.safetensors", run.results / "saebench/tiny_llama/L2/topk/core.json"
    sae.unlink()
    core.unlink()
    faults = [Fault("sae", signal.SIGKILL, snakemake=True), Fault("sae", signal.SIGKILL),
              Fault("saebench-core", signal.SIGTERM)]
    struck = run_with_faults(run.workdir, run.overrides, faults, random.Random(3), str(core.relative_to(run.workdir)))
    print("struck:", ", ".join(map(str, struck)))
    assert_same_artifacts(run.results, tiny_full_run.results)
    assert not leftovers(run.workdir)


def test_killed_circuit_jobs_and_snakemake_resume_to_the_uninterrupted_result(interpbench_tiny_run, tmp_path):
    """One task of the circuit benchmark built again from nothing, up to one discovery method on its
    SIIT model: Snakemake stopped while Tracr compiles, the SIIT training killed, and Snakemake
    killed outright during discovery."""
    run = copy_run(interpbench_tiny_run, tmp_path / "circuits")
    circuits = run.results / "circuits"
    shutil.rmtree(circuits / "models/histogram")
    for name in ("discovery/histogram/siit/eap_ig.parquet", "scores/histogram/siit/eap_ig.parquet",
                 "scores/histogram/siit/eap_ig.json"):
        (circuits / name).unlink()
    faults = [Fault("circuit-compile", signal.SIGTERM, snakemake=True), Fault("circuit-siit", signal.SIGKILL),
              Fault("circuit-discover", signal.SIGKILL, snakemake=True)]
    target = str((circuits / "scores/histogram/siit/eap_ig.json").relative_to(run.workdir))
    struck = run_with_faults(run.workdir, run.overrides, faults, random.Random(2), target)
    print("struck:", ", ".join(map(str, struck)))
    assert_same_artifacts(run.results, interpbench_tiny_run.results)
    assert not leftovers(run.workdir)


def rating_by_prompt(messages: list[dict]) -> str:
    """The same rating for the same question, whichever run or job asks it."""
    return f"Judged.\nRating: [[{hashlib.sha256(messages[-1]['content'].encode()).digest()[0] % 3}]]"


def test_killed_api_judge_jobs_resume_without_asking_again(tiny_run, tmp_path, monkeypatch):
    """Judge jobs calling an API are killed mid-way (SIGKILL, then SIGTERM): the answers they had got
    are in the cache, so the re-run asks only what was never answered (at most the requests in flight
    at each kill) and the judged tables equal an uninterrupted run's. One job at a time (--cores 1),
    so two jobs never race to ask the same question."""
    monkeypatch.setenv("INTERPFLOW_FAULT_KEY", "local")
    concurrency, rng = 2, random.Random(1)
    with StubChatServer(reply=rating_by_prompt, delay_s=0.05) as stub:
        overrides = [*tiny_run.overrides, "judge=openai", f"judge.base_url={stub.base_url}",
                     "judge.api_key_env=INTERPFLOW_FAULT_KEY", f"judge.concurrency={concurrency}"]
        reference = copy_run(tiny_run, tmp_path / "reference")
        command, env = snakemake_command(reference.workdir, overrides, "--cores", "1")
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        asked = len(stub.prompts)
        assert asked == len(set(stub.prompts)) > 0  # each question once, whichever job shares it

        faulty = copy_run(tiny_run, tmp_path / "faulty")
        faults = [Fault("judge", signal.SIGKILL), Fault("judge", signal.SIGTERM)]
        run_with_faults(faulty.workdir, overrides, faults, rng, "--cores", "1")
        again = stub.prompts[asked:]

    asked_twice = len(again) - len(set(again))
    print(f"questions: {asked}; the killed and resumed run asked {len(again)}, {asked_twice} of them twice")
    assert set(again) == set(stub.prompts[:asked])
    assert asked_twice <= 2 * concurrency, asked_twice  # only what was in flight when each job died
    ours, theirs = artifacts(faulty.results), artifacts(reference.results)
    assert sorted(ours) == sorted(theirs)
    judged = [n for n in ours if n.startswith(("judged/", "eval/")) and n.endswith(".parquet")]
    assert judged
    for name in judged:  # the usage JSON differs by design: the resumed run read part of it from the cache
        assert_same(name, ours[name], theirs[name])
    assert not list(faulty.workdir.rglob("*.tmp"))
