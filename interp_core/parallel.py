"""Run independent tasks one after another in this process, or on Ray workers: a local Ray of
``workers`` processes, or a running Ray cluster given by its ``address``.

A task is ``(fn, args)``: a module-level function and plain, picklable positional arguments, so
the same call runs here or on a worker. ``run_tasks`` hands each result to the caller as it
arrives, with the seconds the task took where it ran; the caller stores it (``reproduce`` in ``out/partial/``, the
training search in its log), so a stopped run resumes either way. Ray is imported only when
workers or an address are asked for.

On a worker every task runs with one torch thread and asks Ray for one CPU; on CUDA it also asks
for a GPU share: on a local Ray the GPUs are split evenly over the workers (at most one GPU per
task), on a cluster each task takes one GPU. Workers import this checkout (its root is put first on
their ``PYTHONPATH``) and see the driver's ``INTERP_CORE_*`` variables, so the paper networks and
the data must lie at the same paths on every node of a cluster.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable, Sequence

from interp_core import paths

#: (fn, args): fn(*args) is one task's work.
Task = tuple[Callable[..., Any], tuple]
#: Seconds a cluster's address has to accept a connection before the run gives up.
CONNECT_TIMEOUT = 5.0


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster at the given address cannot be reached."""


def run_tasks(tasks: Sequence[Task], arrived: Callable[[int, Any, float], None], workers: int = 1,
              address: str | None = None, cuda: bool = False) -> None:
    """Run every task and call ``arrived(index of the task in tasks, fn(*args), seconds)`` with
    each result as it arrives.

    ``workers == 1`` and no ``address``: one after another in this process, in order, with this
    process's torch threads. Otherwise on Ray, in the order they finish: ``address`` None starts a
    local Ray with ``workers`` CPUs; an address ("host:port", "ray://host:port" or "auto") connects
    to that cluster, whose resources decide how many tasks run at once. ``cuda``: the tasks run on
    a CUDA device and each asks Ray for its GPU share (module docstring). Ray is shut down when the
    last result has arrived or anything fails (a task, or ``arrived`` itself); what ``arrived`` was
    given stays the caller's.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if address is None and workers == 1:
        for index, (fn, args) in enumerate(tasks):
            arrived(index, *_timed(fn, args, threads=None))
        return
    if not tasks:
        return
    ray = _start_ray(workers, address)
    try:
        gpus = 0.0
        if cuda:
            gpus = 1.0 if address else min(1.0, ray.cluster_resources().get("GPU", 0.0) / workers)
        remote = ray.remote(_timed).options(num_cpus=1, num_gpus=gpus)
        pending = {remote.remote(fn, args, 1): index for index, (fn, args) in enumerate(tasks)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            arrived(pending.pop(ready[0]), *ray.get(ready[0]))
    finally:
        ray.shutdown()


def _timed(fn: Callable[..., Any], args: tuple, threads: int | None) -> tuple[Any, float]:
    """(fn(*args), its wall seconds to 0.1 s), with ``threads`` torch threads (None: as set)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    started = time.perf_counter()
    value = fn(*args)
    return value, round(time.perf_counter() - started, 1)


def _start_ray(workers: int, address: str | None):
    """``ray`` after ``ray.init``: connected to ``address``, else a local Ray of ``workers`` CPUs."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--workers / --address run on Ray, which is not installed (pip install ray)") from None
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    env = {**{k: v for k, v in os.environ.items() if k.startswith("INTERP_CORE_")},
           "PYTHONPATH": os.pathsep.join([str(paths.PROJECT_ROOT), *inherited])}
    options = {"log_to_driver": False, "runtime_env": {"env_vars": env}}
    if address is None:
        ray.init(num_cpus=workers, include_dashboard=False, **options)
        return ray
    _check_reachable(address)
    try:
        ray.init(address=address, **options)
    except ConnectionError as err:
        raise RayUnavailable(f"cannot connect to the Ray cluster at {address!r}: {err}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail within ``CONNECT_TIMEOUT`` where "host:port" (or "ray://host:port") accepts no
    connection; Ray itself retries for minutes. "auto" is left to Ray, which fails at once."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"a Ray address is host:port, ray://host:port or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as err:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address!r}: {err}") from None
