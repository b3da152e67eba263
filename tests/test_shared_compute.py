"""The server-wide queue and result store of the app (app_support/shared_compute.py)."""

import sys
import threading
import time

import pytest

from interp_core import paths

sys.path.insert(0, str(paths.PROJECT_ROOT))
from app_support.shared_compute import MAKE_WAY_QUEUE, Busy, PageTurns, SharedCompute  # noqa: E402


def _in_threads(calls):
    threads = [threading.Thread(target=c) for c in calls]
    for t in threads:
        t.start()
        time.sleep(0.05)  # arrival order
    for t in threads:
        t.join(10)


def test_identical_requests_in_flight_are_computed_once():
    shared, computed, got = SharedCompute(running=2), [], []

    def slow():
        computed.append(1)
        time.sleep(0.3)
        return "result"

    _in_threads([lambda: got.append(shared.get("same", slow)) for _ in range(5)])
    assert len(computed) == 1 and sorted(got) == [("result", False)] + [("result", True)] * 4


def test_distinct_requests_queue_in_order_with_their_positions_and_a_full_queue_says_busy():
    shared, order, positions, errors = SharedCompute(running=1, waiting=2), [], {}, []
    release = threading.Event()

    def request(key):
        def compute():
            order.append(key)
            release.wait(5)
            return key
        try:
            shared.get(key, compute, on_wait=lambda p, s: positions.setdefault(key, []).append(p))
        except Busy as err:
            errors.append((key, str(err)))

    threads = [threading.Thread(target=request, args=(k,)) for k in "abcd"]
    for t in threads:
        t.start()
        time.sleep(0.1)
    time.sleep(0.6)
    assert order == ["a"] and positions["b"][0] == 1 and positions["c"][0] == 2
    assert errors == [("d", "3 requests are being computed or wait; try again in a moment")]
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["a", "b", "c"] and shared.estimate(1) is not None


def test_a_failed_computation_leaves_the_queue_and_is_not_kept():
    shared = SharedCompute(running=1)
    with pytest.raises(ZeroDivisionError):
        shared.get("k", lambda: 1 / 0)
    assert shared.get("k", lambda: 7) == (7, False)  # computed again, not a cached failure
    release = threading.Event()
    holder = threading.Thread(target=shared.get, args=("hold", lambda: release.wait(5)))
    holder.start()
    time.sleep(0.1)

    def stopped(position, seconds):
        raise KeyboardInterrupt  # what a session that reruns while it waits sees

    with pytest.raises(KeyboardInterrupt):
        shared.get("w", lambda: 1, on_wait=stopped)
    release.set()
    holder.join(5)
    assert shared.get("w", lambda: 2) == (2, False)  # its place was freed, not left blocking the queue


def test_the_store_keeps_its_newest_entries():
    shared = SharedCompute(entries=2)
    for key in "abc":
        shared.get(key, lambda key=key: key)
    assert shared.get("a", lambda: "again") == ("again", False) and shared.get("c", lambda: "x") == ("c", True)


def test_an_image_is_drawn_and_encoded_once_as_png_that_st_image_sends_unchanged():
    """shared_image's bytes are a PNG of the drawn array, made once per key; st.image given them with
    output_format="PNG" stores those very bytes (no decoding and encoding per session)."""
    import io

    import numpy as np
    from PIL import Image
    from streamlit.elements.lib.image_utils import _ensure_image_size_and_format, _validate_image_format_string

    from app_support.shared_compute import shared_image

    drawn = []
    picture = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)

    def draw():
        drawn.append(1)
        return picture

    key = ("test", time.perf_counter())
    first, second = shared_image(key, draw), shared_image(key, draw)
    assert first is second and len(drawn) == 1
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(first))), picture)
    image_format = _validate_image_format_string(first, "PNG")
    assert _ensure_image_size_and_format(first, type("Layout", (), {"width": "content"})(), image_format) is first


def test_page_runs_take_turns_first_come_first_served():
    turns, inside, order = PageTurns(wait=5), [], []

    def run(name):
        with turns.turn():
            inside.append(name)
            assert len(inside) == 1, inside  # no other run draws meanwhile
            order.append(name)
            time.sleep(0.1)
            inside.remove(name)

    _in_threads([lambda n=n: run(n) for n in "abcd"])
    assert order == list("abcd") and turns.waited_out == 0


def test_a_run_steps_out_of_its_turn_while_it_computes_and_a_long_turn_is_waited_out():
    turns, order = PageTurns(wait=0.3), []
    computing, computed = threading.Event(), threading.Event()

    def heavy():
        with turns.turn():
            with turns.step_out():  # what shared_result does around a computation
                computing.set()
                computed.wait(5)
            order.append("heavy drew its result")

    def light():
        computing.wait(5)
        with turns.turn():
            order.append("light")
            computed.set()

    _in_threads([heavy, light])
    assert order == ["light", "heavy drew its result"] and turns.waited_out == 0
    release = threading.Event()

    def hog():
        with turns.turn():
            release.wait(5)

    hog = threading.Thread(target=hog)
    hog.start()
    time.sleep(0.1)
    started = time.perf_counter()
    with turns.turn():  # the hog never gives its turn back: this run draws after ``wait`` anyway
        waited = time.perf_counter() - started
    release.set()
    hog.join(5)
    assert 0.25 < waited < 2 and turns.waited_out == 1


def test_a_turn_is_given_back_when_the_run_stops_with_an_exception():
    turns = PageTurns(wait=5)
    with pytest.raises(RuntimeError):
        with turns.turn():
            raise RuntimeError("a rerun request stops the run")
    started = time.perf_counter()
    with turns.turn():
        pass
    assert time.perf_counter() - started < 0.1


def test_the_store_answers_a_hit_inside_the_turn_and_waits_for_a_miss_outside_it():
    shared, asides = SharedCompute(), []

    class Aside:
        def __enter__(self):
            asides.append("out")

        def __exit__(self, *exc):
            asides.append("back")

    assert shared.get("k", lambda: 1, aside=Aside) == (1, False) and asides == ["out", "back"]
    assert shared.get("k", lambda: 2, aside=Aside) == (1, True) and asides == ["out", "back"]


def _queue_runs(turns, count: int, release: threading.Event, drawn: list) -> list[threading.Thread]:
    """A run in its turn until ``release``, and ``count`` runs queued behind it; started."""
    def holder():
        with turns.turn():
            release.wait(5)
            drawn.append("holder")

    def waiter():
        with turns.turn():
            drawn.append("waiter")

    threads = [threading.Thread(target=f) for f in (holder, *[waiter] * count)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    return threads


def _forward_pass_waits(turns, layer=None) -> float:
    """Seconds a computation's make_way (or the forward pass of ``layer``) took."""
    import torch

    started = time.perf_counter()
    with turns.step_out():
        turns.make_way() if layer is None else layer(torch.zeros(1, 2))
    return time.perf_counter() - started


def test_a_computation_makes_way_while_a_class_queues_for_its_turn_and_not_for_a_few_runs():
    turns = PageTurns(wait=5)
    release, drawn = threading.Event(), []
    few = _queue_runs(turns, MAKE_WAY_QUEUE - 1, release, drawn)
    assert _forward_pass_waits(turns) < 0.05  # a few students: the computation goes on
    release.set()
    for t in few:
        t.join(5)
    release, drawn = threading.Event(), []
    threads = _queue_runs(turns, MAKE_WAY_QUEUE, release, drawn)
    threading.Timer(0.3, release.set).start()
    assert _forward_pass_waits(turns) >= 0.25  # a class: it waited for the queue to drain
    for t in threads:
        t.join(5)
    assert drawn[0] == "holder" and len(drawn) == MAKE_WAY_QUEUE + 1
    assert _forward_pass_waits(turns) < 0.05 and turns.waited_out == 0


def test_the_torch_hook_makes_a_computations_forward_passes_wait():
    """The module's global forward hook calls the server's make_way before every forward pass."""
    import torch

    from app_support.shared_compute import PAGE_TURNS

    release, drawn = threading.Event(), []
    threads = _queue_runs(PAGE_TURNS, MAKE_WAY_QUEUE, release, drawn)
    threading.Timer(0.3, release.set).start()
    assert _forward_pass_waits(PAGE_TURNS, torch.nn.Linear(2, 2)) >= 0.25
    for t in threads:
        t.join(5)
    assert _forward_pass_waits(PAGE_TURNS, torch.nn.Linear(2, 2)) < 0.05
