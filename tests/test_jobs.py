"""Background training jobs (interp_core.services.jobs): real worker processes on tiny runs of demo
images, one torch thread each; faults (a killed worker, a full disk) injected into the worker
through a ``sitecustomize`` module on its PYTHONPATH, so the library carries no test hooks."""

from __future__ import annotations

import errno
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from interp_core.datasets import DATASETS
from interp_core.models import available_models, load_checkpoint, load_model
from interp_core.services import jobs
from interp_core.training import PRESETS, make_config

pytestmark = pytest.mark.integration

TINY = {"method": "normal", "dataset": "mnist", "epochs": 2, "subset": 64, "batch_size": 16, "eval_n": 0,
        "train_split": "demo_train", "evaluate_n": 0}

# Injected into the worker: "enospc" makes the Nth checkpoint write fail as on a full disk; "slow"
# makes the Nth write sleep after the temporary file is written and before it replaces the
# checkpoint (creating the marker file first), so the test can kill the worker inside the write.
FAULTS = textwrap.dedent('''
    import errno, os, time
    from pathlib import Path

    fault = os.environ.get("TEST_FAULT")
    if fault:
        import interp_core.models.checkpoint as checkpoint

        real, calls = checkpoint.save_file, []

        def save_file(tensors, filename, metadata=None):
            calls.append(filename)
            marker = Path(os.environ["TEST_FAULT_MARKER"])
            hit = len(calls) == int(os.environ["TEST_FAULT_AT"]) and not marker.exists()
            if hit and fault == "enospc":
                marker.write_text(filename)
                raise OSError(errno.ENOSPC, "No space left on device")
            real(tensors, filename, metadata=metadata)
            if hit and fault == "slow":
                marker.write_text(filename)
                time.sleep(120)

        checkpoint.save_file = save_file
''')


@pytest.fixture
def runs(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("INTERP_CORE_RUNS_DIR", str(folder))
    return folder


@pytest.fixture
def fault(tmp_path, monkeypatch):
    """fault(kind, at): arm the worker-side fault; returns the marker file the fault creates."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(FAULTS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), *filter(None, [os.environ.get("PYTHONPATH")])]))

    def arm(kind: str, at: int) -> Path:
        marker = tmp_path / "fault-marker"
        monkeypatch.setenv("TEST_FAULT", kind)
        monkeypatch.setenv("TEST_FAULT_AT", str(at))
        monkeypatch.setenv("TEST_FAULT_MARKER", str(marker))
        return marker

    return arm


def _wait(job_id, until, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = jobs.job_status(job_id)
        if until(status):
            return status
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {jobs.job_status(job_id)}")


def _ended(status):
    return status["state"] not in jobs.ACTIVE


def _listed(status) -> bool:
    return any(str(e.path) == status["checkpoint"] for e in available_models())


def test_job_trains_evaluates_and_its_model_is_listed(runs):
    job_id = jobs.start_job({**TINY, "evaluate_n": 4})
    assert jobs.job_status(job_id)["state"] in jobs.STATES
    status = _wait(job_id, _ended)
    assert status["state"] == "finished", status["message"]
    assert [h["step"] for h in status["history"]][-1] == status["total_steps"] == 8
    assert {"loss", "accuracy", "eps", "images_per_s", "epoch"} <= set(status["history"][0])
    evaluation = status["evaluation"]
    assert evaluation is not None, status["eval_message"]
    assert evaluation["n"] == 4 and evaluation["dataset"] == "mnist"
    assert [r["eps"] for r in evaluation["accuracy"]] == list(DATASETS["mnist"].paper_eps)
    assert evaluation["accuracy"][0]["accuracy"] == evaluation["clean_accuracy"]
    assert all(0 <= r["retested"] <= r["accuracy"] <= evaluation["clean_accuracy"] for r in evaluation["accuracy"])
    assert evaluation["robust_protocol"]["retest"]["name"] == "quick"
    assert [r["eps"] for r in evaluation["aai"]] == list(DATASETS["mnist"].evaluation_aai_eps())
    assert evaluation["robust_protocol"]["steps"] == 200 and evaluation["aai_protocol"]["steps"] == 200
    # stored beside the checkpoint, so a reload reads it instead of recomputing
    assert jobs.evaluation_path(status["checkpoint"]).is_file()
    assert jobs.read_evaluation(status["checkpoint"]) == evaluation
    ticks = [e for e in jobs._events(runs / job_id / "progress.jsonl") if e["event"] == "eval"]
    assert ticks and {t["stage"] for t in ticks} == {"robust accuracy and its re-test", "AAI Kendall tau"}
    listed = [e for e in available_models("mnist") if str(e.path) == status["checkpoint"]]
    assert listed and listed[0].card.source == "user"
    load_model(listed[0].name)
    assert [j["id"] for j in jobs.list_jobs()] == [job_id]
    assert not list(runs.glob("*/*.tmp"))


def test_stopped_run_is_not_a_model_and_resumes_to_the_end(runs):
    # 120 pgd-at steps (about 5 s on one core), so that a loaded machine still stops it mid-run
    job_id = jobs.start_job({**TINY, "epochs": 20, "subset": 96, "method": "pgd-at", "steps": 5})
    _wait(job_id, lambda s: len(s["history"]) >= 1 and s["checkpoint"] is not None)
    jobs.stop_job(job_id)
    status = _wait(job_id, _ended)
    assert status["state"] == "stopped", status["message"]
    assert status["checkpoint"] is not None and status["metrics"]["steps"] < status["total_steps"]
    assert status["resumable"] and not _listed(status)
    jobs.resume_job(job_id)
    status = _wait(job_id, _ended)
    assert status["state"] == "finished", status["message"]
    assert status["metrics"]["steps"] == status["total_steps"] == 120 and _listed(status)
    steps = [h["step"] for h in status["history"]]
    assert steps == sorted(set(steps))  # the resumed run's curve continues the stopped one's
    with pytest.raises(ValueError, match="cannot be resumed"):
        jobs.resume_job(job_id)


def test_nan_loss_fails_with_its_message_and_is_not_resumable(runs):
    job_id = jobs.start_job({**TINY, "lr": 1e30, "epochs": 5})
    status = _wait(job_id, _ended)
    assert status["state"] == "failed" and "loss became" in status["message"]
    assert not status["resumable"]
    assert status["checkpoint"] is None or not _listed(status)


def test_full_disk_fails_with_a_message_and_keeps_the_last_checkpoint(runs, fault):
    marker = fault("enospc", at=2)  # the epoch-0 checkpoint is written, the epoch-1 one fails
    job_id = jobs.start_job({**TINY, "epochs": 3})
    status = _wait(job_id, _ended)
    assert marker.is_file()
    assert status["state"] == "failed"
    assert "disk is full" in status["message"] and "step 4" in status["message"], status["message"]
    assert status["checkpoint_step"] == 4 and not _listed(status)
    assert load_checkpoint(status["checkpoint"])[1].metrics["steps"] == 4


def test_worker_killed_inside_a_checkpoint_write_then_service_restart(runs, fault):
    """SIGKILL while the step-8 checkpoint is being written; a restarted service (no children, state
    read from disk) shows the run as failed, not as a model; the step-4 checkpoint loads and the run
    resumes from it to the end."""
    marker = fault("slow", at=2)
    job_id = jobs.start_job({**TINY, "epochs": 3})
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert time.monotonic() < deadline and jobs.job_status(job_id)["state"] == "running"
        time.sleep(0.2)
    pid = jobs._read_info(runs / job_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    jobs._POPEN.pop(job_id).wait()  # the old service reaps its child ...
    jobs._POPEN.clear()  # ... and a new one starts with no children: everything comes from disk
    status = jobs.job_status(job_id)
    assert status["state"] == "failed" and "ended without finishing" in status["message"], status
    assert status["checkpoint_step"] == 4 and status["resumable"]
    model, card = load_checkpoint(status["checkpoint"])
    assert card.metrics["steps"] == 4 and not card.metrics["finished"]
    assert not _listed(status) and status["id"] not in {e.name for e in available_models()}
    assert [p.name for p in (runs / job_id).glob("*.safetensors")] == [Path(status["checkpoint"]).name]
    jobs.resume_job(job_id)  # the half-written temporary file is cleared, the pair of step 4 is used
    assert not list((runs / job_id).glob("*.tmp"))
    status = _wait(job_id, _ended)
    assert status["state"] == "finished", status["message"]
    assert status["metrics"]["steps"] == 12 and _listed(status)


def test_compare_runs_two_methods_on_the_same_budget(runs, monkeypatch):
    base = {k: v for k, v in TINY.items() if k != "method"}
    with pytest.raises(ValueError, match="leave 'method' out"):
        jobs.start_compare(TINY)
    with pytest.raises(ValueError, match="two different methods"):
        jobs.start_compare(base, ("int", "int"))
    monkeypatch.setattr(jobs, "MAX_RUNNING", 1)
    with pytest.raises(ValueError, match="a compare starts 2"):
        jobs.start_compare(base)
    monkeypatch.setattr(jobs, "MAX_RUNNING", 2)
    ids = jobs.start_compare({**base, "epochs": 1, "evaluate_n": 2}, ("normal", "int"))
    statuses = [_wait(j, _ended) for j in ids]
    assert [s["config"]["method"] for s in statuses] == ["normal", "int"]
    configs = [{k: v for k, v in s["config"].items() if k != "method"} for s in statuses]
    assert configs[0] == configs[1]
    assert all(s["compare"]["jobs"] == ids and s["compare"]["group"] == statuses[0]["compare"]["group"]
               for s in statuses)
    assert all(s["state"] == "finished" and s["evaluation"]["n"] == 2 for s in statuses)


def test_run_names_cannot_escape_the_runs_folder(runs, tmp_path):
    for bad in ["../x", "..", "/etc/passwd", "a/b", "a\\b", ".hidden", "", "a..b", "x" * 81, "a b", "é"]:
        with pytest.raises(ValueError):
            jobs.check_name(bad)
        with pytest.raises(ValueError, match="not a run name"):
            jobs.start_job({**TINY, "name": bad})
        with pytest.raises(ValueError, match="no training job"):
            jobs.job_status(bad)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "job.json").write_text("{}")
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="no training job"):
        jobs.job_status("link")
    assert jobs.check_name("my-run_2.b") == "my-run_2.b"
    assert not any(runs.rglob("passwd")) and not (tmp_path / "x").exists()


def test_limits_are_enforced(runs, monkeypatch):
    with pytest.raises(ValueError, match="epochs"):
        jobs.start_job({**TINY, "epochs": jobs.MAX_EPOCHS + 1})
    with pytest.raises(ValueError, match="subset"):
        jobs.start_job({**TINY, "subset": jobs.MAX_SUBSET + 1})
    with pytest.raises(ValueError, match="unknown job settings"):
        jobs.start_job({**TINY, "out": "/etc"})
    with pytest.raises(ValueError, match="unknown training method"):
        jobs.start_job({**TINY, "method": "bogus"})
    with pytest.raises(ValueError, match="evaluate_n"):
        jobs.start_job({**TINY, "evaluate_n": jobs.EVALUATION_N + 1})
    monkeypatch.setattr(jobs, "MAX_RUNNING", 1)
    first = jobs.start_job({**TINY, "epochs": 20, "subset": 96, "method": "pgd-at", "steps": 20})
    try:
        with pytest.raises(ValueError, match="active"):
            jobs.start_job(TINY)
    finally:
        jobs.stop_job(first)
        _wait(first, _ended)


#: The keys of a stored evaluation (``ModelEvaluation.to_dict()``), in order, as they always were.
ROBUST_KEYS = ["dataset", "n", "subset", "clean_accuracy", "accuracy", "robust_protocol", "contradicted",
               "masking_signs", "warnings"]
EVALUATION_KEYS = [*ROBUST_KEYS, "aai", "aai_protocol", "seconds"]


def test_evaluate_model_returns_its_record(mnist_normal):
    result = jobs.evaluate_model(mnist_normal, "mnist", 2)
    assert isinstance(result, jobs.ModelEvaluation) and result.n == 2 and result.dataset == "mnist"
    assert [r["eps"] for r in result.accuracy] == list(DATASETS["mnist"].paper_eps)
    assert all(set(r) == {"eps", "accuracy", "retested"} for r in result.accuracy)
    assert [set(r) for r in result.aai] == [{"eps", "kendall_tau", "topk_intersection", "kept"}] * 2
    assert list(result.to_dict()) == EVALUATION_KEYS
    robust = jobs.robust_evaluation(mnist_normal, "mnist", 2)
    assert type(robust) is jobs.RobustEvaluation and list(robust.to_dict()) == ROBUST_KEYS
    assert robust.accuracy == result.accuracy


def test_stored_references_are_model_evaluations_with_their_writers_keys():
    for name, stored in jobs.reference_evaluations("mnist", jobs.EVALUATION_N).items():
        assert set(stored) - {"model", "method", "machine", "wall_seconds"} == set(EVALUATION_KEYS), name


def test_evaluate_model_checks_its_image_count(mnist_normal):
    for n in (0, jobs.EVALUATION_N + 1):
        with pytest.raises(ValueError, match="between 1 and 200"):
            jobs.evaluate_model(mnist_normal, "mnist", n)


# --- presets: the Train page's schedules scale with the run -----------------------------------


@pytest.mark.parametrize(("preset", "dataset"), [(p, d) for p in sorted(PRESETS) for d in PRESETS[p]])
def test_every_preset_reaches_its_training_eps(preset, dataset):
    cfg = make_config("pgd-at", dataset, preset=preset)
    size = cfg.subset or {"mnist": 55_000, "cifar10": 45_000}[dataset]  # its subset, else the train split
    # its own size, an offline run of the demo sample's 100 training images, a one-epoch run
    for images, epochs, batch in ((size, cfg.epochs, cfg.batch_size), (100, 20, 20), (1000, 1, cfg.batch_size)):
        run = make_config("pgd-at", dataset, preset=preset, epochs=epochs, batch_size=batch)
        total = run.run_steps(images)
        if preset == "paper" and images != size:
            continue  # the authors' schedule is in steps: a short run does not reach it (the page warns)
        schedule = run.resolve(total)
        assert schedule.eps_at(total - 1) == pytest.approx(run.eps), (images, epochs, schedule.eps_ramp)


def test_fraction_schedules_resolve_to_steps():
    cfg = make_config("int", "mnist", preset="cpu", lr_steps=[[0.75, 3e-4]], eps_ramp=[0.1, 0.5], gamma_start=0.2)
    steps = cfg.resolve(200)
    assert (steps.schedule_in, steps.eps_ramp, steps.lr_steps, steps.gamma_start) == (
        "steps", [20, 100], [[150, 3e-4]], 40)
    assert steps.eps_at(60) == pytest.approx(cfg.eps / 2) and steps.lr_at(149) == cfg.lr and steps.lr_at(150) == 3e-4
    assert steps.gamma_at(39) == 0 and steps.gamma_at(40) == cfg.gamma
    paper = make_config("int", "mnist", preset="paper")
    assert paper.resolve(10) is paper  # given in steps: kept as the authors wrote it
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_config("int", "mnist", preset="cpu", eps_ramp=[0.1, 50])
    with pytest.raises(ValueError, match="start <= end"):
        make_config("int", "mnist", preset="paper", eps_ramp=[500, 100])
    with pytest.raises(ValueError, match="schedule_in"):
        make_config("int", "mnist", preset="cpu", schedule_in="epochs")


def test_a_command_that_cannot_run_fails_with_a_typed_message(runs, monkeypatch):
    """The worker records the command's ValueError as an error event; the status says it, whatever
    the run printed to stderr."""
    monkeypatch.setattr(jobs, "_launch", lambda folder, mode: None)  # the worker runs here, below
    job_id = jobs.start_job(dict(TINY))
    folder = runs / job_id
    (folder / "stderr.log").write_text("error: something the status must not parse\n")

    def command(argv):
        raise ValueError("init_from nowhere: no such checkpoint")

    assert jobs.run_worker(folder, "train", command) == 2
    status = jobs.job_status(job_id)
    assert status["state"] == "failed" and status["message"] == "init_from nowhere: no such checkpoint"
    assert not status["resumable"]


def test_job_status_reads_a_job_again_only_when_its_files_change(runs, monkeypatch):
    monkeypatch.setattr(jobs, "_launch", lambda folder, mode: None)
    job_id = jobs.start_job(dict(TINY))
    reads = []
    real = jobs._events
    monkeypatch.setattr(jobs, "_events", lambda path: reads.append(path) or real(path))
    first = jobs.job_status(job_id)
    assert jobs.job_status(job_id) == first and len(reads) == 1  # nothing changed: nothing read
    first["history"].append("mutated by a caller")
    assert jobs.job_status(job_id)["history"] == []  # callers get copies
    jobs._append(runs / job_id, {"event": "error", "message": "a new event"})
    assert jobs.job_status(job_id)["message"] == "a new event" and len(reads) == 2


def test_a_full_disk_is_recognised_by_its_error_not_by_words_in_a_message():
    from interp_core.services.jobs import _disk_full

    class SafetensorError(Exception):  # how safetensors reports it: the OS error survives only as text
        pass

    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as err:
            raise RuntimeError("checkpoint not written") from err
    except RuntimeError as wrapped:
        assert _disk_full(wrapped)
    assert _disk_full(full)
    assert _disk_full(SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                      'message: "No space left on device" })'))
    assert not _disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not _disk_full(ValueError("the run's name says: No space left"))
