"""Device placement: the GPU a scheduler made visible, else the CPU; the choice goes to the job's log."""

from __future__ import annotations

import torch

from interpflow.models.loading import choose_device


def test_cpu_when_no_gpu_is_visible(monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device() == "cpu"
    assert "device cpu (CUDA_VISIBLE_DEVICES=)" in capsys.readouterr().err


def test_the_allocated_gpu_when_one_is_visible(monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # SLURM gave this job GPU 3: torch calls it cuda:0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device() == "cuda"
    assert "device cuda (CUDA_VISIBLE_DEVICES=3)" in capsys.readouterr().err
