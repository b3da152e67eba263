"""Background training runs for the app: each run is a worker process
(``python -m interp_core.cli.job_worker <folder> <mode>``, one torch thread; see :func:`run_worker`) that trains with the
``interp_core train`` command, then evaluates the finished model (:func:`evaluate_model`).

Everything about a job lives on disk in ``runs/<job_id>/``, so it survives page reloads and server
restarts and every visitor sees it:

- ``job.json``: settings, the training command, the worker's pid and mode, the compare group;
- ``progress.jsonl``: one JSON event per line: ``launch`` (written before each worker starts,
  with its mode), the trainer's ``step`` / ``epoch`` / ``checkpoint`` / ``end`` events, the
  evaluation's ``eval`` progress (stage, done, total), and ``error`` / ``eval_error`` messages;
- ``stdout.log`` / ``stderr.log`` of the workers (appended by every launch);
- the checkpoint ``<dataset>-<arch>-<method>-<job_id>.safetensors`` with its optimizer state,
  and ``<checkpoint stem>.evaluation.json`` (:func:`evaluation_path`), the automatic evaluation.

Every file is replaced atomically (written beside, then renamed) or appended line by line, so no
half-written file is ever read as complete. A job's state comes from those files and from whether
its worker process is alive (its pid, running a command line naming the job's folder):

- ``running``: training; ``evaluating``: trained, the evaluation is under way;
- ``finished``: trained to the end (``evaluation`` holds the results once written);
- ``stopped``: stopped from the page (SIGTERM: the trainer writes a checkpoint and exits);
- ``failed``: the training ended with an error (loss not finite, disk full: ``message`` says
  which), or the worker died without a result (killed, machine restarted).

A stopped or failed run is not a model (the registry skips unfinished checkpoints);
``resumable`` says whether :func:`resume_job` can continue it from its last checkpoint.

Limits keep a classroom from exhausting the machine: at most ``MAX_RUNNING`` jobs at once
(``INTERP_CORE_MAX_JOBS``), at most ``MAX_EPOCHS`` epochs and ``MAX_SUBSET`` training images per
job. Breaking one raises ValueError with the reason.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

from torch import nn

from interp_core import paths
from interp_core.attacks import PAPER_SUBSET
from interp_core.data import DatasetNotFound
from interp_core.datasets import DATASETS
from interp_core.evaluate import Progress, aai_evaluation, evaluation_set, robust_accuracy
from interp_core.io import write_atomic
from interp_core.models import CheckpointError, load_checkpoint, read_card
from interp_core.training import TrainConfig, config_to_args, make_config, previous_state_path, state_path

MAX_RUNNING = int(os.environ.get("INTERP_CORE_MAX_JOBS", "2"))
MAX_EPOCHS = 20
MAX_SUBSET = 55_000  # the MNIST train split: the cpu preset's runs fit
STATES = ("running", "evaluating", "finished", "stopped", "failed")
ACTIVE = ("running", "evaluating")
#: Images of the automatic evaluation: the paper's subset size; a job may ask for fewer, and the
#: classroom preset does by default (its compare ends within minutes).
EVALUATION_N = PAPER_SUBSET["n"]
PRESET_EVALUATION_N = {"classroom": 30}
#: The shipped paper networks a run is compared with, and where their evaluations are stored
#: (written by ``tools/train_references.py`` with :func:`evaluate_model`).
REFERENCE_MODELS = {d: tuple(f"{d}-smallgap-{m}-paper" for m in ("normal", "pgd-at", "int"))
                    for d in ("mnist", "cifar10")}
REFERENCES = paths.PROJECT_ROOT / "results" / "train-references.json"

# Settings a job may set: the TrainConfig fields (each has a ``train`` flag).
_SETTINGS = tuple(f.name for f in fields(TrainConfig))
#: Settings of the job itself: images of the automatic evaluation (0: none), a name for the run.
_JOB_SETTINGS = ("evaluate_n", "name")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
_POPEN: dict[str, subprocess.Popen] = {}  # children of this process, reaped by job_status
_LOCK = threading.Lock()  # one start at a time per server process (the limit check and the launch)

#: Why a stored evaluation without re-tested numbers is not shown.
OUTDATED = "its evaluation was stored before every number had its re-test: evaluate again"
#: progress(stage, done, total) of :func:`evaluate_model`.
StageProgress = Callable[[str, int, int], None]


@dataclass
class RobustEvaluation:
    """The robustness half of a model's evaluation (:func:`robust_evaluation`), on ``n`` images of
    ``subset`` of ``dataset``: ``accuracy`` = [{"eps", "accuracy" (the authors' PGD, as reported),
    "retested" (left after the re-test)}] per eps of ``paper_eps`` (eps 0: clean), accuracies in
    [0, 1]; the clean accuracy; ``robust_protocol`` (``RobustResult.protocol``, the re-test's
    settings under "retest"); ``contradicted``: the eps where the re-test takes more than
    ``interp_core.evaluate.robust.CONTRADICTION`` off the reported accuracy; the names of the
    gradient-masking signs that fired and the warnings."""

    dataset: str
    n: int
    subset: str
    clean_accuracy: float
    accuracy: list[dict]
    robust_protocol: dict
    contradicted: list[float]
    masking_signs: list[str]
    warnings: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelEvaluation(RobustEvaluation):
    """The evaluation of a run or reference model (:func:`evaluate_model`): the robustness half
    (``RobustEvaluation``), then ``aai`` = [{"eps", "kendall_tau" (in [-1, 1], NaN where no image
    kept its class), "topk_intersection", "kept"}] (``AAIResult.results``), ``aai_protocol`` and the
    wall-clock seconds of both halves (rounded to 0.1 s).

    Its ``to_dict()`` is what is stored (:func:`evaluation_path`, ``REFERENCES``); the stored
    evaluations are read back as those dicts (:func:`read_evaluation`, :func:`reference_evaluations`),
    since their writers add keys of their own ("model"; the references' "method", "machine",
    "wall_seconds")."""

    aai: list[dict]
    aai_protocol: dict
    seconds: float


def check_name(name: str) -> str:
    """``name`` if it is a plain file name for the runs folder: letters, digits, ``_``, ``.`` and
    ``-``, starting with a letter or digit, at most 80 characters, no ``..``. Raises ValueError
    otherwise (path separators, absolute paths and ``..`` never name a run)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{name!r} is not a run name: use 1-80 letters, digits, '_', '.' or '-', starting with a "
                         "letter or digit, without '..' or path separators")
    return name


def start_job(config: dict) -> str:
    """Start a training run in the background; returns its job id.

    config: ``method``, ``dataset`` (required) and any other TrainConfig field (preset default
    "cpu"); and for the job: evaluate_n (images of the automatic evaluation, 0 to ``EVALUATION_N``;
    default ``PRESET_EVALUATION_N`` of the preset, else ``EVALUATION_N``), name (a label,
    :func:`check_name`). Raises ValueError for unknown or out-of-limit settings, or when
    ``MAX_RUNNING`` jobs are active.
    """
    with _LOCK:
        prepared = _prepare(config)
        _check_capacity(1)
        return _create(*prepared)


def start_compare(config: dict, methods: tuple[str, str] = ("normal", "int")) -> list[str]:
    """Start two runs that differ only in ``method`` (same data, schedule, budget and seed);
    returns their job ids. ``config`` as for :func:`start_job`, without ``method``. Each job's
    status names the other under ``compare``."""
    if "method" in config:
        raise ValueError("a compare sets the method of each run: leave 'method' out of its settings")
    if len(methods) != 2 or methods[0] == methods[1]:
        raise ValueError(f"a compare needs two different methods, got {list(methods)}")
    with _LOCK:
        prepared = [_prepare({**config, "method": m}) for m in methods]
        _check_capacity(2)
        group = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        ids = [_create(*p, compare=group) for p in prepared]
    for job_id in ids:
        _update_info(job_id, compare_jobs=ids)
    return ids


def resume_job(job_id: str) -> dict:
    """Continue a stopped or failed run from its last checkpoint (the trainer's ``resume``), then
    evaluate it; returns its status. Raises ValueError when the run is not resumable."""
    with _LOCK:
        status = job_status(job_id)
        if not status["resumable"]:
            raise ValueError(f"run {job_id} cannot be resumed: {status['message']}")
        _check_capacity(1)
        _launch(_folder(job_id), "resume")
    return job_status(job_id)


def evaluate_job(job_id: str) -> dict:
    """Run the automatic evaluation of a finished run again (after it was stopped or failed);
    returns the status. Raises ValueError unless the run is finished and not active."""
    with _LOCK:
        status = job_status(job_id)
        if status["state"] != "finished" or status["checkpoint"] is None:
            raise ValueError(f"run {job_id} is {status['state']}: only a finished run can be evaluated")
        _check_capacity(1)
        _launch(_folder(job_id), "evaluate")
    return job_status(job_id)


def stop_job(job_id: str) -> dict:
    """Ask an active job to stop (SIGTERM: training writes a checkpoint and exits; an evaluation
    ends without results); returns its status."""
    folder = _folder(job_id)
    info = _read_info(folder)
    if _alive(job_id, info["pid"], folder):
        _update_info(job_id, stop_requested=True)
        os.kill(info["pid"], signal.SIGTERM)
    return job_status(job_id)


def job_status(job_id: str) -> dict:
    """State of a job, read from its files.

    Returns id, state (one of ``STATES``), message, config, compare ({"group", "jobs"} or None),
    history (list of {step, epoch, loss, accuracy, eps, images_per_s}), total_steps,
    checkpoint (path or None), checkpoint_step (steps in the checkpoint file, or None), metrics
    (the trainer's summary of a finished or stopped run), evaluation (the stored evaluation,
    :func:`read_evaluation`, or None), eval_progress ({"stage", "done", "total"} while
    evaluating, else None), eval_message (why a finished run has no evaluation, or ""),
    resumable (bool), started (epoch seconds).

    A job whose files and process are as at the last call gets that call's status back (a copy)
    without its files being read again: polling many jobs every 2 s costs a few stats per job.
    """
    folder = _folder(job_id)
    info = _read_info(folder)
    checkpoint = Path(info["checkpoint"])
    alive = _alive(job_id, info["pid"], folder)
    files = (folder / "job.json", folder / "progress.jsonl", folder / "stderr.log", checkpoint,
             evaluation_path(checkpoint), state_path(checkpoint), previous_state_path(checkpoint))
    signature = (alive, tuple(_stamp(p) for p in files))
    cached = _STATUS_CACHE.get(job_id)
    if cached is not None and cached[0] == signature:
        return copy.deepcopy(cached[1])
    status = _read_status(job_id, folder, info, checkpoint, alive)
    _STATUS_CACHE[job_id] = (signature, copy.deepcopy(status))
    return status


#: job id -> (signature of its files and process, the status read from them): see job_status.
_STATUS_CACHE: dict[str, tuple[tuple, dict]] = {}


def _stamp(path: Path) -> tuple[int, int] | None:
    """(modification time in ns, size) of a file, or None when it is not there."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _read_status(job_id: str, folder: Path, info: dict, checkpoint: Path, alive: bool) -> dict:
    """The status of :func:`job_status`, read from the job's files."""
    events = _events(folder / "progress.jsonl")
    launches = [i for i, e in enumerate(events) if e.get("event") == "launch"]
    last = launches[-1] if launches else 0
    mode = events[last].get("mode", "train") if launches else "train"
    ends = [i for i, e in enumerate(events) if e.get("event") == "end"]
    end = events[ends[-1]] if ends and (mode == "evaluate" or ends[-1] > last) else None
    errors = [e["message"] for e in events[last:] if e.get("event") in ("error", "halted")]
    # the trainer halted the run (a non-finite loss, catastrophic overfitting): resuming would repeat it
    halted = any(e.get("event") == "halted" for e in events[last:])
    history, total = [], None
    for event in events:
        if event.get("event") == "step":
            total = event["total_steps"]
            while history and history[-1]["step"] >= event["step"]:
                history.pop()  # logged after the checkpoint a resumed run restarted from
            history.append({k: event[k] for k in ("step", "epoch", "loss", "accuracy", "eps", "images_per_s")})
    has_checkpoint = checkpoint.is_file()
    evaluation = read_evaluation(checkpoint) if has_checkpoint else None
    eval_progress, eval_message = None, ""
    metrics = dict(end.get("metrics", {})) if end is not None else {}
    if alive and (end is None or end["status"] != "finished"):
        state = "running"
        message = "stopping (writing a checkpoint)" if info["stop_requested"] else (
            f"step {history[-1]['step']}/{total}" if history else "starting")
    elif alive:
        state = "evaluating"
        ticks = [e for e in events[last:] if e.get("event") == "eval"]
        eval_progress = {k: ticks[-1][k] for k in ("stage", "done", "total")} if ticks else None
        message = "stopping the evaluation" if info["stop_requested"] else "evaluating the trained model"
    elif end is not None:
        state = end["status"]
        message = f"{state} after {end['step']} steps" + (
            f" in {metrics['train_seconds']} s" if "train_seconds" in metrics else "")
        if state == "finished" and evaluation is None and info.get("evaluate_n", EVALUATION_N):
            eval_errors = [e["message"] for e in events[last:] if e.get("event") == "eval_error"]
            eval_message = (eval_errors[-1] if eval_errors else OUTDATED if evaluation_path(checkpoint).is_file()
                            else "the evaluation did not complete (its process ended)")
    else:
        state = "failed"
        stderr = _last_line(folder / "stderr.log")
        if errors:
            message = errors[-1]
        else:
            message = ("the run's process ended without finishing (killed, or the machine restarted)"
                       + (f": {stderr}" if stderr and "Error" in stderr else ""))
    checkpoint_step = _checkpoint_step(checkpoint) if has_checkpoint else None
    resumable = (not alive and state in ("stopped", "failed") and checkpoint_step is not None
                 and not halted
                 and (state_path(checkpoint).is_file() or previous_state_path(checkpoint).is_file()))
    if state == "failed" and checkpoint_step is not None:
        message += f"; the last checkpoint (step {checkpoint_step}) is kept" + (
            " and can be resumed" if resumable else "")
    compare = {"group": info["compare"], "jobs": info.get("compare_jobs", [])} if info.get("compare") else None
    return {"id": job_id, "state": state, "message": message, "config": info["config"], "compare": compare,
            "history": history, "total_steps": total, "checkpoint": str(checkpoint) if has_checkpoint else None,
            "checkpoint_step": checkpoint_step, "metrics": metrics, "evaluation": evaluation,
            "eval_progress": eval_progress, "eval_message": eval_message, "resumable": resumable,
            "started": info["started"]}


def list_jobs() -> list[dict]:
    """Status of every job in the runs folder, newest first; folders that are not jobs of this
    folder (bad names, links out of it, unreadable job files) are left out."""
    root = paths.runs_dir()
    ids = sorted((p.parent.name for p in root.glob("*/job.json")), reverse=True) if root.is_dir() else []
    found = []
    for job_id in ids:
        try:
            found.append(job_status(job_id))
        except (ValueError, KeyError, OSError):
            continue
    return found


def evaluation_path(checkpoint: str | os.PathLike) -> Path:
    """Where the automatic evaluation of a checkpoint is stored: ``<stem>.evaluation.json`` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.evaluation.json")


def read_evaluation(checkpoint: str | os.PathLike) -> dict | None:
    """The stored evaluation of a checkpoint (``ModelEvaluation.to_dict()`` with the checkpoint's
    "model" name), or None (none, not readable, or stored before the evaluation re-tested its
    numbers: ``OUTDATED``)."""
    path = evaluation_path(checkpoint)
    try:
        evaluation = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return evaluation if isinstance(evaluation, dict) and "contradicted" in evaluation else None


def robust_evaluation(model: nn.Module, dataset: str, n: int = EVALUATION_N, retest: str = "quick",
                      progress: Progress | None = None) -> RobustEvaluation:
    """The robustness half of :func:`evaluate_model`: on the first ``n`` (1 to 200) images of the
    authors' seed-99 test subset (read from the demo sample, which holds them first, so no data
    directory is needed), the authors' PGD (:func:`interp_core.evaluate.robust_accuracy`, protocol
    "paper") at every eps of the dataset's ``paper_eps`` beside its re-test (``retest``, one of
    ``interp_core.evaluate.RETESTS``: random-start PGD, then Square or AutoAttack, on what the
    authors' PGD left standing). Returns a ``RobustEvaluation``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
    if not 1 <= n <= EVALUATION_N:
        raise ValueError(f"n must be between 1 and {EVALUATION_N} (the paper subset), got {n}")
    data, subset = evaluation_set(dataset, "demo", n=n, subset="paper")
    robust = robust_accuracy(model, data.images, data.labels, list(DATASETS[dataset].paper_eps), "paper", retest=retest,
                             subset=subset, progress=progress)
    return RobustEvaluation(dataset, len(data.labels), subset, robust.results[0]["accuracy"],
                            [{k: r[k] for k in ("eps", "accuracy", "retested")} for r in robust.results],
                            robust.protocol, [r["eps"] for r in robust.contradictions()], robust.masking_signs,
                            robust.warnings)


def evaluate_model(model: nn.Module, dataset: str, n: int = EVALUATION_N, retest: str = "quick",
                   progress: StageProgress | None = None) -> ModelEvaluation:
    """The evaluation shown for every run and reference model: :func:`robust_evaluation` (the
    authors' PGD beside its ``retest``) and the AAI Kendall tau
    (:func:`interp_core.evaluate.aai_evaluation`) at the two eps of ``DATASETS[dataset].evaluation_aai_eps()``, on the
    same ``n`` images. Returns a ``ModelEvaluation``.
    """
    started = time.perf_counter()

    def stage(name: str):
        return (lambda done, total: progress(name, done, total)) if progress else None

    result = robust_evaluation(model, dataset, n, retest, stage("robust accuracy and its re-test"))
    data, subset = evaluation_set(dataset, "demo", n=n, subset="paper")
    aai = aai_evaluation(model, data.images, data.labels, list(DATASETS[dataset].evaluation_aai_eps()), subset=subset,
                         progress=stage("AAI Kendall tau"))
    return ModelEvaluation(**vars(result), aai=aai.results, aai_protocol=aai.protocol,
                           seconds=round(time.perf_counter() - started, 1))


def reference_evaluations(dataset: str, n: int) -> dict[str, dict]:
    """The stored evaluations (``ModelEvaluation.to_dict()`` with the keys of
    ``tools/train_references.py``: "model", "method", "machine", "wall_seconds") of
    ``REFERENCE_MODELS[dataset]`` on ``n`` images, by model name in that order (those stored before the re-test left out, as in
    :func:`read_evaluation`); empty when ``REFERENCES`` has none for that size."""
    try:
        stored = json.loads(REFERENCES.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    found = stored.get("evaluations", {}).get(dataset, {}).get(str(n), {})
    return {name: found[name] for name in REFERENCE_MODELS.get(dataset, ())
            if "contradicted" in found.get(name, {})}


# --- inside the app process --------------------------------------------------------------------

def _prepare(config: dict) -> tuple[dict, dict, object]:
    """Checked training settings, job settings and the TrainConfig of a job's config."""
    unknown = set(config) - set(_SETTINGS) - set(_JOB_SETTINGS)
    if unknown:
        raise ValueError(f"unknown job settings {sorted(unknown)}; allowed: {sorted(set(_SETTINGS) | set(_JOB_SETTINGS))}")
    settings = {"preset": "cpu", "arch": "smallgap", **{k: v for k, v in config.items() if k in _SETTINGS}}
    job = {k: config[k] for k in _JOB_SETTINGS if k in config}
    evaluate_n = job.setdefault("evaluate_n", PRESET_EVALUATION_N.get(settings["preset"], EVALUATION_N))
    if not isinstance(evaluate_n, int) or not 0 <= evaluate_n <= EVALUATION_N:
        raise ValueError(f"evaluate_n must be an integer from 0 to {EVALUATION_N}, got {evaluate_n!r}")
    if "name" in job:
        check_name(job["name"])
    for key in ("method", "dataset"):
        if key not in settings:
            raise ValueError(f"a job needs {key!r}")
    overrides = {k: v for k, v in settings.items() if k not in ("method", "dataset", "arch", "preset")}
    cfg = make_config(settings["method"], settings["dataset"], settings["arch"], settings["preset"], **overrides)
    if cfg.epochs > MAX_EPOCHS:
        raise ValueError(f"at most {MAX_EPOCHS} epochs per job on this server, got {cfg.epochs}")
    if cfg.subset is None or cfg.subset > MAX_SUBSET:
        raise ValueError(f"a job trains on at most {MAX_SUBSET} images: set subset <= {MAX_SUBSET}")
    return settings, job, cfg


def _check_capacity(needed: int) -> None:
    active = [j for j in list_jobs() if j["state"] in ACTIVE]
    if len(active) + needed > MAX_RUNNING:
        raise ValueError(f"{len(active)} training jobs are active (limit {MAX_RUNNING}"
                         + (f", a compare starts {needed}" if needed > 1 else "")
                         + "); wait for one to finish or stop one")


def _create(settings: dict, job: dict, cfg, compare: str | None = None) -> str:
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    job_id = stamp
    if "name" in job:
        job_id = check_name(f"{stamp}-{job['name']}" + (f"-{cfg.method}" if compare else ""))
    folder = paths.runs_dir() / job_id
    name = f"{cfg.dataset}-{cfg.arch}-{cfg.method}-{job_id}"
    command = [sys.executable, "-m", "interp_core", "train", "--out", str(folder), "--name", name, "--json",
               "--progress-jsonl", str(folder / "progress.jsonl"), "--device", "cpu", *config_to_args(cfg)]
    try:
        folder.mkdir(parents=True)
        _write_json(folder / "job.json", {"id": job_id, "config": settings, "command": command, "pid": None,
                                          "started": time.time(), "checkpoint": str(folder / f"{name}.safetensors"),
                                          "stop_requested": False, "compare": compare, **job})
    except OSError as err:
        raise ValueError(f"the run could not be started: {_write_problem(err)}") from None
    _launch(folder, "train")
    return job_id


def _launch(folder: Path, mode: str) -> None:
    """Start the job's worker in ``mode`` ("train", "resume" or "evaluate"); a file that cannot be
    written (a full disk) raises ValueError with the reason."""
    try:
        for leftover in folder.glob("*.tmp"):  # an atomic write cut short by a killed worker
            leftover.unlink(missing_ok=True)
        _append(folder, {"event": "launch", "mode": mode, "time": time.time()})
        worker = [sys.executable, "-m", "interp_core.cli.job_worker", str(folder), mode]
        env = dict(os.environ, INTERP_CORE_THREADS="1")
        with open(folder / "stdout.log", "ab") as out, open(folder / "stderr.log", "ab") as err:
            proc = subprocess.Popen(worker, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)  # the run outlives the app's session
        _POPEN[folder.name] = proc
        _update_info(folder.name, pid=proc.pid, mode=mode, stop_requested=False)
    except OSError as err:
        raise ValueError(f"the run could not be started: {_write_problem(err)}") from None


def _folder(job_id: str) -> Path:
    try:
        check_name(job_id)
    except ValueError:
        raise ValueError(f"no training job {job_id!r}") from None
    root = paths.runs_dir()
    folder = root / job_id
    if not (folder / "job.json").is_file() or folder.resolve().parent != root.resolve():
        raise ValueError(f"no training job {job_id!r}")
    return folder


def _read_info(folder: Path) -> dict:
    return json.loads((folder / "job.json").read_text())


def _update_info(job_id: str, **changes) -> None:
    folder = _folder(job_id)
    _write_json(folder / "job.json", {**_read_info(folder), **changes})


def _alive(job_id: str, pid: int | None, folder: Path) -> bool:
    """Whether the job's worker runs; a recycled pid (another command line) does not count."""
    proc = _POPEN.get(job_id)
    if proc is not None:
        return proc.poll() is None  # also reaps the finished child
    if pid is None:
        return False
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


def _checkpoint_step(checkpoint: Path) -> int | None:
    try:
        return read_card(checkpoint).metrics.get("steps")
    except CheckpointError:
        return None


def _events(path: Path) -> list[dict]:
    """The JSON lines of a progress file; a line being written (not yet valid JSON) is skipped."""
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _last_line(path: Path) -> str:
    """Last non-empty line of a log, ignoring progress-bar redraws (carriage returns)."""
    if not path.is_file():
        return ""
    lines = [part.strip() for line in path.read_text(errors="replace").splitlines()
             for part in line.split("\r")[-1:] if part.strip()]
    return lines[-1] if lines else ""


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data))


def _append(folder: Path, event: dict) -> None:
    with open(folder / "progress.jsonl", "a") as f:
        f.write(json.dumps(event) + "\n")


# --- the worker process ------------------------------------------------------------------------

class _EvaluationStopped(Exception):
    """SIGTERM during the evaluation."""


def _raise_stop(signum, frame) -> None:
    raise _EvaluationStopped


def _disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from) says the disk is full: an OSError with
    ENOSPC, or safetensors' SafetensorError, which keeps only the OS error's text (``IoError(Os {
    code: 28, kind: StorageFull, ... })``)."""
    chain = [err]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and cause not in chain:
        chain.append(cause)
    return any((isinstance(e, OSError) and e.errno == errno.ENOSPC)
               or (type(e).__name__ == "SafetensorError" and "StorageFull" in str(e)) for e in chain)


def _write_problem(err: BaseException) -> str:
    """A message for an error while training or writing the run's files."""
    full = _disk_full(err)
    if full:
        return ("the disk is full: the run could not write its files; the last complete checkpoint is kept "
                "(free some space, then resume)")
    return f"the run ended with an error: {type(err).__name__}: {err}"


def run_worker(folder: Path, mode: str, run_command: Callable[[list[str]], int]) -> int:
    """The worker of the job in ``folder``: train (mode "train" or "resume") by running the
    ``interp_core train`` command of job.json through ``run_command`` (argv after ``python -m
    interp_core`` -> exit code; settings that cannot run raise ValueError, missing data
    DatasetNotFound), then, if the training finished, evaluate (also mode "evaluate") and store the
    evaluation atomically beside the checkpoint. Every failure is recorded as an ``error`` event
    with its message (what ``job_status`` shows). Returns the exit code."""
    from safetensors import SafetensorError

    info = _read_info(folder)
    if mode in ("train", "resume"):
        try:  # the command after `python -m interp_core`
            code = run_command(info["command"][3:] + (["--resume"] if mode == "resume" else []))
        except (ValueError, DatasetNotFound) as err:  # the settings or the data, not the run: said as is
            _append(folder, {"event": "error", "message": str(err)})
            return 2
        except (OSError, RuntimeError, SafetensorError) as err:
            _append(folder, {"event": "error", "message": _write_problem(err)})
            raise
        ends = [e for e in _events(folder / "progress.jsonl") if e.get("event") in ("launch", "end")]
        if code or not ends or ends[-1].get("status") != "finished":
            return code
    n = info.get("evaluate_n", EVALUATION_N)
    if n == 0 or _read_info(folder)["stop_requested"]:
        return 0
    signal.signal(signal.SIGTERM, _raise_stop)
    checkpoint = Path(info["checkpoint"])
    try:
        model, card = load_checkpoint(checkpoint)
        result = evaluate_model(model.requires_grad_(False), card.dataset, n, progress=lambda stage, done, total: _append(
            folder, {"event": "eval", "stage": stage, "done": done, "total": total}))
        write_atomic(evaluation_path(checkpoint), json.dumps({"model": card.name, **result.to_dict()}))
    except _EvaluationStopped:
        _append(folder, {"event": "eval_error", "message": "the evaluation was stopped; evaluate again to see it"})
        return 0
    except (OSError, ValueError, RuntimeError, ImportError, SafetensorError) as err:
        _append(folder, {"event": "eval_error", "message": f"the evaluation failed: {_write_problem(err)}"})
        raise
    return 0
