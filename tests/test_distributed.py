"""Data-parallel training: ``torchrun --nproc_per_node=2`` on CPU (gloo) gives the weights of a
single-process run on the same data (each rank takes half of every global batch; DDP averages)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from interp_core import paths

pytestmark = pytest.mark.integration

ARGS = ["train", "--method", "normal", "--dataset", "mnist", "--preset", "cpu", "--epochs", "2", "--subset", "64",
        "--batch-size", "16", "--lr", "0.003", "--train-split", "demo", "--eval-n", "0", "--device", "cpu", "--json"]


def _run(command, tmp_path):
    # the checkout under test first on the path (cwd is tmp_path; an installed interp_core may be another's)
    env = dict(os.environ, INTERP_CORE_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(paths.PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
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


def test_free_training_on_two_cpu_processes_matches_one(tmp_path):
    """Free adversarial training under DDP: each rank carries the delta of its half of the batch;
    the state file holds the whole batch's delta in the global order, as a single process has it."""
    free = ["train", "--method", "pgd-at", *ARGS[3:], "--free", "--steps", "2", "--step-size-eps", "1", "--eps", "0.1",
            "--eps-ramp", "0,0"]
    single, ddp = tmp_path / "single.safetensors", tmp_path / "ddp.safetensors"
    _run([sys.executable, "-m", "interp_core", *free, "--out", str(single)], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          "-m", "interp_core", *free, "--out", str(ddp)], tmp_path)
    a, b = load_file(str(single)), load_file(str(ddp))
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), (key, (a[key] - b[key]).abs().max())
    deltas = [torch.load(out.with_suffix(".state.pt"), weights_only=True)["free_delta"] for out in (single, ddp)]
    assert deltas[0].shape == (16, 1, 28, 28) and deltas[0].abs().max() > 0
    assert (deltas[0] - deltas[1]).abs().gt(1e-4).float().mean() < 0.01  # a sign may flip where a gradient is ~0
