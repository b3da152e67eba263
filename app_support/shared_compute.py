"""Fair sharing of the server's CPU between sessions (a class on one small server): every result
is kept for every session, a request whose twin is being computed waits for that computation
instead of repeating it, and distinct requests go through one first-come queue that lets
``running`` of them compute at once (one torch thread each). A session waiting in the queue sees
its position and an estimate of the wait; beyond ``waiting`` queued requests a new one is turned
away with ``Busy`` (try again shortly) rather than piling up.

The server has one such store (``server_compute``) for the heavy results of every page (Explore,
Random start, Robustness, ISA trade-off; each key starts with its page's name), and the pages get
them with ``shared_result``, which shows the wait and the busy notice. A second store
(``server_figures``) keeps the images and charts drawn from those results, so a class of thirty
opening one view draws its figures once (``shared_figure``), and its images are encoded once
(``shared_image``: PNG bytes, which ``show_shared_image`` hands to st.image as they are).
"""

from __future__ import annotations

import io
import os
import statistics
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np
import streamlit as st
from PIL import Image

#: on_wait(position, seconds): the request is number ``position`` (1 = next) in the queue, or 0 while
#: its twin computes for another session; ``seconds`` the estimated wait (None before any timing).
WaitCallback = Callable[[int, float | None], None]

#: Distinct requests computed at once: one per core (each computes on one thread).
RUNNING = max(1, os.cpu_count() or 1)
#: Requests that may wait: a class of thirty, each with one request in flight.
WAITING = 30
ENTRIES = 128
#: Figures kept (a view draws a few per model and attack step shown).
FIGURE_ENTRIES = 512
POLL_SECONDS = 0.5


class Busy(RuntimeError):
    """The queue is full: the request was not queued."""


class SharedCompute:
    """Results by key, shared by every session (see the module docstring); thread-safe."""

    def __init__(self, running: int = RUNNING, waiting: int = WAITING, entries: int = ENTRIES):
        self.running, self.waiting, self.entries = running, waiting, entries
        self._lock = threading.Condition()
        self._results: OrderedDict[Hashable, Any] = OrderedDict()
        self._queue: list[Hashable] = []  # keys in arrival order; the first ``running`` compute
        self._seconds: list[float] = []  # the latest compute times, for the estimate
        self.computed = self.hits = 0  # computations run, and requests answered from the store

    def estimate(self, position: int) -> float | None:
        """About how many seconds a request at ``position`` (1 = next) waits and computes: the median
        of the latest compute times, once per round of ``running`` requests ahead of it, plus its own."""
        if not self._seconds:
            return None
        return statistics.median(self._seconds) * (1 + (position - 1) // self.running + 1)

    def get(self, key: Hashable, compute: Callable[[], Any], on_wait: WaitCallback | None = None) -> tuple[Any, bool]:
        """(the result of ``compute()`` for ``key``, whether it was already there). ``compute`` runs
        at most once at a time per key; an exception it raises reaches every request waiting for
        it and is not kept. Raises Busy when ``waiting`` requests already wait."""
        with self._lock:
            while key in self._queue:  # its twin is queued or computing: wait for that result
                if on_wait:
                    on_wait(0, None)
                self._lock.wait(POLL_SECONDS)
            if key in self._results:
                self._results.move_to_end(key)
                self.hits += 1
                return self._results[key], True
            if len(self._queue) - self.running >= self.waiting:
                raise Busy(f"{len(self._queue)} requests are being computed or wait; try again in a moment")
            self._queue.append(key)
        try:  # from here on the key leaves the queue however this ends (a session may rerun while it waits)
            with self._lock:
                while (position := self._queue.index(key) - self.running + 1) > 0:
                    if on_wait:
                        on_wait(position, self.estimate(position))
                    self._lock.wait(POLL_SECONDS)
            started = time.perf_counter()
            value = compute()
            with self._lock:
                self.computed += 1
                self._seconds = (self._seconds + [time.perf_counter() - started])[-20:]
                self._results[key] = value
                while len(self._results) > self.entries:
                    self._results.popitem(last=False)
        finally:
            with self._lock:
                self._queue.remove(key)
                self._lock.notify_all()
        return value, False


@st.cache_resource
def server_compute() -> SharedCompute:
    """The server's store and compute queue, shared by every session and page (a class)."""
    return SharedCompute()


def shared_result(key: Hashable, compute: Callable[[], Any], box=None) -> Any | None:
    """``compute()``'s result for ``key`` from the server's store (``SharedCompute.get``): while the
    request waits, a note in ``box`` (an st container, the page by default) says for what (its
    place in the queue and an estimate, or a twin computing for another session). None when the
    server is busy: then ``box`` shows a warning saying so. Exceptions of ``compute`` propagate."""
    box = st.container() if box is None else box
    note = box.empty()

    def waiting(position: int, seconds: float | None) -> None:
        eta = f", about {seconds:.0f} s" if seconds is not None else ""
        note.info("Another session is computing this very result: it will be shown here too." if position == 0
                  else f"In the queue of this server: number {position}{eta}.", icon=":material/hourglass_top:")

    try:
        return server_compute().get(key, compute, waiting)[0]
    except Busy as err:
        box.warning(f"The server is busy ({err}).", icon=":material/block:")
        return None
    finally:
        note.empty()


@st.cache_resource
def server_figures() -> SharedCompute:
    """The server's drawn figures, shared by every session: no queue bound (a figure is drawn in
    milliseconds; sessions asking for the same one at once wait for one drawing)."""
    return SharedCompute(waiting=10**6, entries=FIGURE_ENTRIES)


def shared_figure(key: Hashable, draw: Callable[[], Any]) -> Any:
    """``draw()``'s figure (an image array or a chart; never changed by its users) for ``key``: the
    key of the result it is drawn from with every drawing setting. Drawn once for all sessions."""
    return server_figures().get(key, draw)[0]


def shared_image(key: Hashable, draw: Callable[[], np.ndarray]) -> bytes:
    """``draw()``'s image (H x W x 3 uint8) as PNG bytes, drawn and encoded once for all sessions
    (``shared_figure``); pages show it with ``show_shared_image``."""
    def encode() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(draw()).save(buffer, format="PNG")
        return buffer.getvalue()

    return shared_figure(("png", key), encode)


def show_shared_image(key: Hashable, draw: Callable[[], np.ndarray], where=st, **image_args) -> None:
    """Show ``shared_image(key, draw)`` in ``where`` (an st container, the page by default) with
    ``image_args`` for st.image (alt, ...). As PNG: given PNG bytes and that format, st.image neither
    decodes nor encodes them again (an image array would be encoded for every session that shows it,
    the largest cost of a class opening one view)."""
    where.image(shared_image(key, draw), output_format="PNG", **image_args)
