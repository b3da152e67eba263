"""Torch intra-op threads (the choice ``interp_core.runtime.configure_threads`` makes): one forward
+ input-gradient pass of MNIST smallgap on 100 demo images with 1 and 2 threads, as the machine is
and with a second busy process (one thread of matrix products) started by this benchmark. The
1-minute load average in the section header says how busy the machine was anyway. Wall time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from benchmarks.results import medians
from interp_core.data import load_dataset
from interp_core.models import load_model

_BUSY = ("import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\n"
         "while True:\n    a = torch.tanh(a @ a)\n")


def run(quick: bool) -> dict:
    model, _ = load_model("mnist-smallgap-normal-paper")
    data = load_dataset("mnist", "demo", n=100)
    x, y = data.images, data.labels

    def pass_() -> None:
        for _ in range(5):
            x_req = x.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)

    threads_before = torch.get_num_threads()
    repeats, rows = (2 if quick else 7), []
    try:
        for busy in (False, True):
            helper = subprocess.Popen([sys.executable, "-c", _BUSY], env={**os.environ, "OMP_NUM_THREADS": "1"}) \
                if busy else None
            try:
                times = {}
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    times[threads] = medians({"pass": pass_}, repeats, clock=time.perf_counter)["pass"] / 5
            finally:
                if helper is not None:
                    helper.terminate()
                    helper.wait(10)
            rows.append({"second busy process": "yes" if busy else "no", "ms per pass, 1 thread": 1000 * times[1],
                         "ms per pass, 2 threads": 1000 * times[2], "2 threads / 1 thread": times[2] / times[1]})
    finally:
        torch.set_num_threads(threads_before)
    return {"title": "Threads: 1 against 2", "settings": {"batch": 100, "repeats": repeats, "passes per repeat": 5},
            "tables": {"Forward + input-gradient pass, MNIST smallgap": rows},
            "notes": ["a ratio above 1 means the second thread costs more than it brings (a shared machine)"]}
