"""The server-wide queue and result store of the app (app_support/shared_compute.py)."""

import sys
import threading
import time

import pytest

from interp_core import paths

sys.path.insert(0, str(paths.PROJECT_ROOT))
from app_support.shared_compute import Busy, SharedCompute  # noqa: E402


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
