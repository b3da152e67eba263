"""Background training runs for the app: each run is a subprocess ``python -m interp_core train``
writing into ``runs/<job_id>/``, with one torch thread (``INTERP_CORE_THREADS=1``).

Everything about a job lives on disk, so it survives page reloads and server restarts and every
visitor sees it: ``job.json`` (settings, command, pid), ``progress.jsonl`` (the trainer's
progress events), ``stdout.log`` (its last line is the JSON summary), ``stderr.log``, and the
checkpoint ``<dataset>-<arch>-<method>-<job_id>.safetensors``, which
:func:`interp_core.models.available_models` lists (source "user") once written.

Limits keep a classroom from exhausting the machine: at most ``MAX_RUNNING`` jobs at once
(``INTERP_CORE_MAX_JOBS``), at most ``MAX_EPOCHS`` epochs and ``MAX_SUBSET`` training images per
job. Breaking one raises ValueError with the reason.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

from interp_core import paths
from interp_core.io import write_atomic
from interp_core.training import TrainConfig, config_to_args, make_config

MAX_RUNNING = int(os.environ.get("INTERP_CORE_MAX_JOBS", "2"))
MAX_EPOCHS = 20
MAX_SUBSET = 20_000

# Settings a job may set: the TrainConfig fields (each has a ``train`` flag).
_SETTINGS = tuple(f.name for f in fields(TrainConfig))
_POPEN: dict[str, subprocess.Popen] = {}  # children of this process, reaped by job_status


def start_job(config: dict) -> str:
    """Start a training run in the background; returns its job id.

    config: ``method``, ``dataset`` (required) and any other TrainConfig field (preset default
    "cpu"). Raises ValueError for unknown or out-of-limit settings, or when ``MAX_RUNNING``
    jobs are already running.
    """
    unknown = set(config) - set(_SETTINGS)
    if unknown:
        raise ValueError(f"unknown job settings {sorted(unknown)}; allowed: {sorted(_SETTINGS)}")
    settings = {"preset": "cpu", "arch": "smallgap", **config}
    for key in ("method", "dataset"):
        if key not in settings:
            raise ValueError(f"a job needs {key!r}")
    overrides = {k: v for k, v in settings.items() if k not in ("method", "dataset", "arch", "preset")}
    cfg = make_config(settings["method"], settings["dataset"], settings["arch"], settings["preset"], **overrides)
    if cfg.epochs > MAX_EPOCHS:
        raise ValueError(f"at most {MAX_EPOCHS} epochs per job on this server, got {cfg.epochs}")
    if cfg.subset is None or cfg.subset > MAX_SUBSET:
        raise ValueError(f"a job trains on at most {MAX_SUBSET} images: set subset <= {MAX_SUBSET}")
    running = [j for j in list_jobs() if j["state"] == "running"]
    if len(running) >= MAX_RUNNING:
        raise ValueError(f"{len(running)} training jobs are already running (limit {MAX_RUNNING}); "
                         "wait for one to finish or stop one")

    job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    folder = paths.runs_dir() / job_id
    folder.mkdir(parents=True)
    name = f"{cfg.dataset}-{cfg.arch}-{cfg.method}-{job_id}"
    command = [sys.executable, "-m", "interp_core", "train", "--out", str(folder), "--name", name, "--json",
               "--progress-jsonl", str(folder / "progress.jsonl"), "--device", "cpu", *config_to_args(cfg)]
    env = dict(os.environ, INTERP_CORE_THREADS="1")
    with open(folder / "stdout.log", "wb") as out, open(folder / "stderr.log", "wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # the run outlives the app's session
    _POPEN[job_id] = proc
    _write_json(folder / "job.json", {"id": job_id, "config": settings, "command": command, "pid": proc.pid,
                                      "started": time.time(), "checkpoint": str(folder / f"{name}.safetensors"),
                                      "stop_requested": False})
    return job_id


def job_status(job_id: str) -> dict:
    """State of a job: id, state (running / finished / stopped / failed), config, history (list of
    {step, epoch, loss, accuracy, eps, images_per_s}), total_steps, message, checkpoint (path or
    None), metrics (the summary of a finished or stopped run), started (epoch seconds)."""
    folder = _folder(job_id)
    info = json.loads((folder / "job.json").read_text())
    history, total = [], None
    progress = folder / "progress.jsonl"
    if progress.is_file():
        for line in progress.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if event.get("event") == "step":
                total = event["total_steps"]
                history.append({k: event[k] for k in ("step", "epoch", "loss", "accuracy", "eps", "images_per_s")})
    summary = _last_json(folder / "stdout.log")
    metrics: dict = {}
    if _alive(job_id, info["pid"], folder):
        state = "running"
        message = "stopping (writing a checkpoint)" if info["stop_requested"] else (
            f"step {history[-1]['step']}/{total}" if history else "starting")
    elif summary is not None:
        state = summary["status"]
        metrics = {k: v for k, v in summary.items() if k not in ("status", "checkpoint")}
        message = f"{state} after {summary['steps']} steps in {summary['train_seconds']} s"
    else:
        state = "failed"
        message = _last_line(folder / "stderr.log") or "the training process ended without a result"
    checkpoint = Path(info["checkpoint"])
    return {"id": job_id, "state": state, "config": info["config"], "history": history, "total_steps": total,
            "message": message, "checkpoint": str(checkpoint) if checkpoint.is_file() else None,
            "metrics": metrics, "started": info["started"]}


def stop_job(job_id: str) -> dict:
    """Ask a running job to stop (SIGTERM: it writes a checkpoint and exits); returns its status."""
    folder = _folder(job_id)
    info = json.loads((folder / "job.json").read_text())
    if _alive(job_id, info["pid"], folder):
        info["stop_requested"] = True
        _write_json(folder / "job.json", info)
        os.kill(info["pid"], signal.SIGTERM)
    return job_status(job_id)


def list_jobs() -> list[dict]:
    """Status of every job in the runs folder, newest first."""
    root = paths.runs_dir()
    ids = sorted((p.parent.name for p in root.glob("*/job.json")), reverse=True) if root.is_dir() else []
    return [job_status(i) for i in ids]


def _folder(job_id: str) -> Path:
    folder = paths.runs_dir() / job_id
    if "/" in job_id or job_id.startswith(".") or not (folder / "job.json").is_file():
        raise ValueError(f"no training job {job_id!r}")
    return folder


def _alive(job_id: str, pid: int, folder: Path) -> bool:
    """Whether the job's process runs; a recycled pid (another command line) does not count."""
    proc = _POPEN.get(job_id)
    if proc is not None:
        return proc.poll() is None  # also reaps the finished child
    if Path("/proc/self").exists():  # Linux: also tells a zombie (empty command line) from a run
        try:
            return str(folder).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _last_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    lines = path.read_text().strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and "status" in value else None


def _last_line(path: Path) -> str:
    """Last non-empty line of a log, ignoring progress-bar redraws (carriage returns)."""
    if not path.is_file():
        return ""
    lines = [part.strip() for line in path.read_text(errors="replace").splitlines()
             for part in line.split("\r")[-1:] if part.strip()]
    return lines[-1] if lines else ""


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data))
