"""Device placement: the GPU a scheduler made visible, else the CPU; the choice goes to the job's log.

Nothing is mocked: each case loads the tiny model in a fresh interpreter with the environment a
job would see, and reads where torch really put the weights and what the job logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

LOAD = """
import json, sys
from interpflow.models.loading import load_model
model, _ = load_model(sys.argv[1])
print(json.dumps(sorted({str(p.device.type) for p in model.parameters()})))
"""


def load_in_job(tiny_model_dir, visible: str) -> tuple[list[str], str]:
    """The devices of the loaded model's parameters, and the job's log, with CUDA_VISIBLE_DEVICES=visible."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
    done = subprocess.run([sys.executable, "-c", LOAD, str(tiny_model_dir)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_cpu_when_no_gpu_is_visible(tiny_model_dir):
    devices, log = load_in_job(tiny_model_dir, "")
    assert devices == ["cpu"]
    assert "interpflow: device cpu (CUDA_VISIBLE_DEVICES=)" in log


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the fallback cannot happen")
def test_an_allocated_gpu_without_cuda_falls_back_to_the_cpu(tiny_model_dir):
    """What a SLURM node with GPUs but no CUDA build (the test cluster's fake GPUs) gives a job."""
    devices, log = load_in_job(tiny_model_dir, "1")
    assert devices == ["cpu"]
    assert "interpflow: device cpu (CUDA_VISIBLE_DEVICES=1)" in log


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_the_allocated_gpu_when_one_is_visible(tiny_model_dir):
    devices, log = load_in_job(tiny_model_dir, "0")
    assert devices == ["cuda"]
    assert "interpflow: device cuda (CUDA_VISIBLE_DEVICES=0)" in log


CLAIM = """
import sys, time
from pathlib import Path
from interpflow.models.gpu_locks import claim_free_gpu
print(claim_free_gpu(2, Path(sys.argv[1])), flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_jobs_on_one_machine_claim_different_gpus(tmp_path):
    """Two jobs hold GPUs 0 and 1; a third finds none free; once the first exits its GPU is free again."""
    jobs = [subprocess.Popen([sys.executable, "-c", CLAIM, str(tmp_path), "5"], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    claimed = sorted(job.stdout.readline().strip() for job in jobs)
    assert claimed == ["0", "1"]
    third = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path), "0"], capture_output=True, text=True, timeout=60)
    assert third.stdout.strip() == "None"
    jobs[0].kill()
    jobs[0].wait()
    again = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path), "0"], capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() in ("0", "1")
    jobs[1].kill()
    jobs[1].wait()
