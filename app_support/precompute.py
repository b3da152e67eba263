"""The start-up precompute of the shipped lessons' views: every result a lesson step's page asks
for (an Explore step's models, a Random start step) is put into the server's store
(app_support/shared_compute.py) under the key that page asks for (app_support/explore_runs.py:
``link_request`` / ``model_job``, ``start_request`` / ``start_job``, as the pages and a lesson's
slides read a link), so a class opening a lesson's view gets its result from the store instead of
computing it.

It starts once per server process (``start_precompute``, called by every page's set-up) and runs
in a background thread, one view after another through the store's queue (so it holds at most
one of its places) on the process's one torch thread (interp_core.runtime.configure_threads).
``INTERP_CORE_PRECOMPUTE=0`` turns it off (the test suite does, see tests/conftest.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import streamlit as st

from app_support.explore_runs import link_request, model_job, start_job, start_request
from app_support.lessons import LESSONS, Lesson
from app_support.shared_compute import SharedCompute, server_compute

_LOG = logging.getLogger(__name__)
#: The environment variable that turns the start-up precompute off ("0").
PRECOMPUTE_ENV = "INTERP_CORE_PRECOMPUTE"


def lesson_jobs(lesson: Lesson) -> tuple[list[tuple[str, tuple, Callable[[], Any]]], list[str]]:
    """(step title, store key, computation) of every result ``lesson``'s steps show, one per model
    of an Explore step and one per Random start step, and why the steps whose link cannot be
    recomputed (see link_request, start_request) were left out."""
    jobs, failed = [], []
    for step in lesson.steps:
        try:
            if step.page == "pages/explore.py":
                request, x, _ = link_request(step.params)
                jobs += [(step.title, *model_job(request, x, spec)) for spec in request["specs"]]
            elif step.page == "pages/random_start.py":
                jobs.append((step.title, *start_job(start_request(step.params)[0])))
        except ValueError as err:
            failed.append(f"{step.title}: {err}")
    return jobs, failed


@dataclass
class Precompute:
    """The start-up precompute's progress: ``done`` of ``views`` results in the store after
    ``seconds``; ``failed`` names the views that could not be computed, and why."""

    views: int = 0
    done: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)
    finished: bool = False

    def run(self, lessons: Iterable[Lesson], shared: SharedCompute) -> None:
        """Put every view of ``lessons`` into ``shared``, one after another (a failing view is
        logged and skipped)."""
        started = time.perf_counter()
        jobs = []
        for lesson in lessons:
            lesson_list, failed = lesson_jobs(lesson)
            jobs += lesson_list
            self.failed += failed
        self.views = len(jobs)
        for title, key, compute in jobs:
            try:
                shared.get(key, compute)
            except Exception as err:  # noqa: BLE001 - one view that fails leaves the others to compute
                self.failed.append(f"{title}: {type(err).__name__}: {err}")
                _LOG.warning("precompute of %r failed: %s", title, err)
            else:
                self.done += 1
            self.seconds = time.perf_counter() - started
        self.finished = True
        _LOG.info("precomputed %d of %d lesson views in %.1f s", self.done, self.views, self.seconds)


@st.cache_resource(show_spinner=False)
def start_precompute() -> Precompute | None:
    """Once per server process: the shipped lessons' views computed into the server's store in a
    background thread (page loads do not wait for it); its progress, or None when
    ``INTERP_CORE_PRECOMPUTE=0``."""
    if os.environ.get(PRECOMPUTE_ENV, "1") == "0":
        return None
    progress = Precompute()
    threading.Thread(target=progress.run, args=(list(LESSONS.values()), server_compute()), daemon=True,
                     name="lesson-precompute").start()
    return progress


def precompute_note() -> str | None:
    """A line on the start-up precompute for the Lesson page (None when it is turned off)."""
    progress = start_precompute()
    if progress is None:
        return None
    failed = f"; not computed: {'; '.join(progress.failed)}" if progress.failed else ""
    if progress.finished:
        return (f"The shipped lessons' views were computed when the server started ({progress.done} of "
                f"{progress.views} results in {progress.seconds:.0f} s): they open at once{failed}.")
    return (f"The shipped lessons' views are being computed since the server started: {progress.done} of "
            f"{progress.views or '…'} results so far{failed}.")
