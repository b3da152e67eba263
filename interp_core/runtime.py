"""Device and CPU-thread choices, made once by entry points (CLI, app, tests), never by library code.

Threads, measured on the project's 2-core machine (smallgap, batch 100, forward + input gradient):
alone, 2 intra-op threads take 32 ms against 46 ms for 1; with a second busy process, 2 threads take
88 ms against 48 ms for 1. So work that has the machine to itself (a CLI run) uses every core, and
work that shares it (app sessions, background training, parallel test workers) uses one thread.
``INTERP_CORE_THREADS`` overrides both.
"""

from __future__ import annotations

import os

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA if available, else CPU; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return resolved


def configure_threads(shared: bool) -> int:
    """Set torch's intra-op threads: 1 when the machine is shared, every core when it is not."""
    value = os.environ.get("INTERP_CORE_THREADS")
    threads = int(value) if value else (1 if shared else max(os.cpu_count() or 1, 1))
    torch.set_num_threads(threads)
    return threads
