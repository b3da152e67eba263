"""Background training jobs (interp_core.services.jobs): real subprocesses on a tiny run of demo images."""

from __future__ import annotations

import time

import pytest

from interp_core.services import jobs
from interp_core.models import available_models, load_model

pytestmark = pytest.mark.integration

TINY = {"method": "normal", "dataset": "mnist", "epochs": 2, "subset": 64, "batch_size": 16, "eval_n": 16,
        "eval_steps": 2, "train_split": "demo", "eval_split": "demo"}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CORE_RUNS_DIR", str(tmp_path))
    return tmp_path


def _wait(job_id, until, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = jobs.job_status(job_id)
        if until(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {jobs.job_status(job_id)}")


def test_job_runs_to_the_end_and_its_model_is_listed(runs):
    job_id = jobs.start_job(TINY)
    assert jobs.job_status(job_id)["state"] in ("running", "finished")
    status = _wait(job_id, lambda s: s["state"] != "running")
    assert status["state"] == "finished", status["message"]
    assert [h["step"] for h in status["history"]][-1] == status["total_steps"] == 8
    assert {"loss", "accuracy", "eps", "images_per_s", "epoch"} <= set(status["history"][0])
    assert 0 <= status["metrics"]["heldout_clean_accuracy"] <= 1
    listed = [e for e in available_models("mnist") if str(e.path) == status["checkpoint"]]
    assert listed and listed[0].card.source == "user"
    load_model(listed[0].name)
    assert [j["id"] for j in jobs.list_jobs()] == [job_id]


def test_stop_job_checkpoints_and_reports_stopped(runs):
    job_id = jobs.start_job({**TINY, "method": "pgd-at", "epochs": 20, "subset": 256, "steps": 20})
    _wait(job_id, lambda s: len(s["history"]) >= 1)
    jobs.stop_job(job_id)
    status = _wait(job_id, lambda s: s["state"] != "running")
    assert status["state"] == "stopped", status["message"]
    assert status["checkpoint"] is not None and status["metrics"]["steps"] < status["total_steps"]


def test_failed_job_reports_the_error(runs):
    job_id = jobs.start_job({**TINY, "lr": 1e30, "epochs": 5})
    status = _wait(job_id, lambda s: s["state"] != "running")
    assert status["state"] == "failed" and "loss became" in status["message"]


def test_limits_are_enforced(runs, monkeypatch):
    with pytest.raises(ValueError, match="epochs"):
        jobs.start_job({**TINY, "epochs": jobs.MAX_EPOCHS + 1})
    with pytest.raises(ValueError, match="subset"):
        jobs.start_job({**TINY, "subset": jobs.MAX_SUBSET + 1})
    with pytest.raises(ValueError, match="unknown job settings"):
        jobs.start_job({**TINY, "out": "/etc"})
    with pytest.raises(ValueError, match="unknown training method"):
        jobs.start_job({**TINY, "method": "bogus"})
    with pytest.raises(ValueError, match="no training job"):
        jobs.job_status("../x")
    monkeypatch.setattr(jobs, "MAX_RUNNING", 1)
    first = jobs.start_job({**TINY, "epochs": 20, "subset": 256, "method": "pgd-at", "steps": 20})
    try:
        with pytest.raises(ValueError, match="already running"):
            jobs.start_job(TINY)
    finally:
        jobs.stop_job(first)
        _wait(first, lambda s: s["state"] != "running")
