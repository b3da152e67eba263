"""The server's store behind the pages (app_support/shared_compute.py, app_support/precompute.py): the
start-up precompute puts every view of the shipped lesson there under the key its page asks for,
and the Random start, Robustness and ISA trade-off pages get their results through the same queue
(computed once for sessions asking at once, a busy notice when it is full)."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from interp_core import paths

pytestmark = pytest.mark.integration
ROOT = paths.PROJECT_ROOT
sys.path.insert(0, str(ROOT))
from app_support.lessons import GUIDED  # noqa: E402
from app_support.shared_compute import server_compute, server_figures  # noqa: E402
from app_support.precompute import PRECOMPUTE_ENV, start_precompute  # noqa: E402

TIMEOUT = 300
START_LINK = {"dataset": "mnist", "model": "mnist-smallgap-int-paper", "image": "3", "eps": "0.2", "steps": "20",
              "run": "1"}


def open_view(page: str, params: dict) -> AppTest:
    """A session that opens ``page`` by a link with ``params``."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(page)
    at.query_params.update(params)
    return at.run()


def test_after_the_start_up_precompute_opening_a_lesson_view_computes_nothing(monkeypatch):
    monkeypatch.setenv(PRECOMPUTE_ENV, "1")
    start_precompute.clear()
    progress = start_precompute()  # what the server's first page run starts: a background thread
    deadline = time.monotonic() + 600
    while not progress.finished and time.monotonic() < deadline:
        time.sleep(0.5)
    models = sum(len(s.params["models"].split(",")) if "models" in s.params else 1 for s in GUIDED.steps)
    assert progress.finished and progress.failed == [] and progress.done == progress.views == models
    print(f"precomputed {progress.done} results in {progress.seconds:.1f} s")
    store = server_compute()
    for step in GUIDED.steps:
        computed, hits = store.computed, store.hits
        at = open_view(step.page, step.params)
        assert not at.exception and not at.error, (step.title, at.exception, [e.value for e in at.error])
        assert any(c.value.startswith("Results for:") for c in at.caption), step.title
        assert store.computed == computed, f"{step.title}: computed again, not taken from the store"
        assert store.hits > hits, step.title
    start_precompute.clear()


def test_precompute_is_off_when_the_environment_says_so(monkeypatch):
    monkeypatch.setenv(PRECOMPUTE_ENV, "0")
    start_precompute.clear()
    assert start_precompute() is None
    at = open_view("pages/lesson.py", {})
    assert not any("computed when the server started" in c.value for c in at.caption)
    start_precompute.clear()


@pytest.fixture
def one_script_parse_at_a_time(monkeypatch):
    """Parse page scripts one at a time, as the real server does: its one ScriptCache holds a lock while it
    parses, but each AppTest run has a cache of its own. Two ``ast.parse`` calls in two threads at once can
    fail on Python 3.11 ("AST constructor recursion depth mismatch", CPython gh-106905)."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    lock, get_bytecode = threading.Lock(), ScriptCache.get_bytecode

    def locked(cache: ScriptCache, script_path: str):
        with lock:
            return get_bytecode(cache, script_path)

    monkeypatch.setattr(ScriptCache, "get_bytecode", locked)


def test_random_start_sessions_asking_at_once_compute_once(one_script_parse_at_a_time):
    store, pages = server_compute(), []
    computed = store.computed

    def student():
        pages.append(open_view("pages/random_start.py", START_LINK))

    threads = [threading.Thread(target=student) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert len(pages) == 2 and all(not at.exception for at in pages)
    assert all(any(c.value.startswith("Results for: MNIST #3") for c in at.caption) for at in pages)
    assert store.computed == computed + 1


@pytest.mark.parametrize("page, run", [("pages/random_start.py", None), ("pages/robustness.py", "rob_run"),
                                       ("pages/isa_tradeoff.py", "isa_run"),
                                       ("pages/isa_tradeoff.py", "isa_bound_run")])
def test_a_full_queue_gives_a_busy_notice_instead_of_results(monkeypatch, page, run):
    store = server_compute()
    monkeypatch.setattr(store, "running", 1)
    monkeypatch.setattr(store, "waiting", 0)
    release = threading.Event()
    holder = threading.Thread(target=store.get, args=(("held", page, run), lambda: release.wait(60)))
    holder.start()
    try:
        time.sleep(0.2)
        computed = store.computed
        at = open_view(page, {**START_LINK, "seed": "7"} if run is None else {})
        if run:
            at.button(key=run).click().run()
        assert not at.exception, at.exception
        assert any(w.value.startswith("The server is busy (1 requests are being computed or wait; try again")
                   for w in at.warning), [w.value for w in at.warning]
        assert store.computed == computed and not at.table
    finally:
        release.set()
        holder.join(10)


def test_a_second_session_on_the_same_explore_view_draws_no_figure_again():
    step = next(s for s in GUIDED.steps if s.page == "pages/explore.py")
    figures = server_figures()
    asked = figures.computed + figures.hits
    first = open_view(step.page, step.params)
    assert not first.exception and first.image, first.exception
    shown = figures.computed + figures.hits - asked  # the summary, the maps, the attack step image and chart
    assert shown >= 4
    drawn, hits = figures.computed, figures.hits
    second = open_view(step.page, step.params)
    assert not second.exception and len(second.image) == len(first.image)
    assert figures.computed == drawn and figures.hits == hits + shown
