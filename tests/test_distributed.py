"""Data-parallel training: ``torchrun --nproc_per_node=2`` on CPU (gloo) gives the weights of a
single-process run on the same data (each rank takes half of every global batch; DDP averages)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.integration

ARGS = ["train", "--method", "normal", "--dataset", "mnist", "--preset", "cpu", "--epochs", "2", "--subset", "64",
        "--batch-size", "16", "--lr", "0.003", "--train-split", "demo", "--eval-n", "0", "--device", "cpu", "--json"]


def _run(command, tmp_path):
    env = dict(os.environ, INTERP_CORE_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_two_cpu_processes_match_one(tmp_path):
    single, ddp = tmp_path / "single.safetensors", tmp_path / "ddp.safetensors"
    _run([sys.executable, "-m", "interp_core", *ARGS, "--out", str(single)], tmp_path)
    done = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                 "-m", "interp_core", *ARGS, "--out", str(ddp)], tmp_path)
    assert '"processes": 2' in done.stdout
    a, b = load_file(str(single)), load_file(str(ddp))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), (key, (a[key] - b[key]).abs().max())
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)
