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

Page runs take turns (``page_turn``): the view pages draw one run at a time, first come first
served. Python runs one thread at a time, so thirty interleaved runs of a view finish no sooner than
thirty runs in a row, and cost the server more (measured on a 2-core box: about 70 ms of CPU per
run interleaved, 30-40 ms in turn; benchmarks/bench_load.py). A run steps out of its turn while it
waits for or computes a result (``shared_result``), and no run waits more than ``TURN_WAIT_S`` for
its turn: past that it draws beside the others, as without turns. While ``MAKE_WAY_QUEUE`` or more runs
queue for their turn (a class, not a few students), the computations make way: before each
module's forward pass (a global torch hook, active only in threads computing a result) a
computation waits until the queue is empty, at most ``MAKE_WAY_S`` at a time; a class opening a view then draws it in about a second, and the attacks go on after.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable, ContextManager, Hashable, Iterator

import numpy as np
import streamlit as st
import torch
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
#: The longest a page run waits for its turn before it draws anyway.
TURN_WAIT_S = 2.0
#: The longest a computation waits, at one forward pass, for the page runs queued for their turn.
MAKE_WAY_S = 2.0
#: Queued page runs from which computations make way for them.
MAKE_WAY_QUEUE = 4


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

    def get(self, key: Hashable, compute: Callable[[], Any], on_wait: WaitCallback | None = None,
            aside: Callable[[], ContextManager] = contextlib.nullcontext) -> tuple[Any, bool]:
        """(the result of ``compute()`` for ``key``, whether it was already there). ``compute`` runs
        at most once at a time per key; an exception it raises reaches every request waiting for
        it and is not kept. Raises Busy when ``waiting`` requests already wait. A request that is
        not answered at once waits and computes inside ``aside()`` (``PageTurns.step_out``)."""
        with self._lock:
            if key in self._results and key not in self._queue:
                self._results.move_to_end(key)
                self.hits += 1
                return self._results[key], True
        with aside():
            return self._wait_or_compute(key, compute, on_wait)

    def _wait_or_compute(self, key: Hashable, compute: Callable[[], Any],
                         on_wait: WaitCallback | None) -> tuple[Any, bool]:
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


class PageTurns:
    """Page runs one at a time, first come first served (see the module docstring); thread-safe.
    A turn belongs to a thread; a thread already in its turn enters again freely."""

    def __init__(self, wait: float = TURN_WAIT_S):
        self.wait = wait
        self._lock = threading.Lock()
        self._holder: int | None = None  # the thread whose turn it is
        self._waiting: deque[tuple[int, threading.Event]] = deque()
        self._no_queue = threading.Event()  # set while fewer than MAKE_WAY_QUEUE runs wait for their turn
        self._no_queue.set()
        self._computing = threading.local()  # .on: this thread computes a result (``step_out``)
        self.waited_out = 0  # runs that drew without a turn after waiting ``wait`` seconds

    def _acquire(self, me: int) -> None:
        with self._lock:
            if self._holder is None:
                self._holder = me
                return
            handed = threading.Event()
            self._waiting.append((me, handed))
            if len(self._waiting) >= MAKE_WAY_QUEUE:
                self._no_queue.clear()
        handed.wait(self.wait)
        with self._lock:
            if self._holder != me:  # not handed over (it may be, just as the wait runs out)
                self._waiting.remove((me, handed))
                self.waited_out += 1
            if len(self._waiting) < MAKE_WAY_QUEUE:
                self._no_queue.set()

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                self._holder, handed = self._waiting.popleft()
                handed.set()
            else:
                self._holder = None
            if len(self._waiting) < MAKE_WAY_QUEUE:
                self._no_queue.set()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Run the block in this thread's turn (after at most ``wait`` seconds without one)."""
        me = threading.get_ident()
        if self._holder == me:
            yield
            return
        self._acquire(me)
        try:
            yield
        finally:
            if self._holder == me:  # not when a step out's wait for the turn ran out
                self._release()

    @contextlib.contextmanager
    def step_out(self) -> Iterator[None]:
        """Run the block (a result's wait or computation) outside this thread's turn, others drawing
        meanwhile, and making way for them (``make_way``); then queue for the turn again."""
        held = self._holder == threading.get_ident()
        if held:
            self._release()
        self._computing.on = True
        try:
            yield
        finally:
            self._computing.on = False
            if held:
                self._acquire(threading.get_ident())

    def make_way(self) -> None:
        """In a thread computing a result (``step_out``): wait while ``MAKE_WAY_QUEUE`` or more page runs
        queue for their turn (at most ``MAKE_WAY_S``). Elsewhere nothing."""
        if getattr(self._computing, "on", False):
            self._no_queue.wait(MAKE_WAY_S)


#: The server's page turns (a module's state lives as long as the server process).
PAGE_TURNS = PageTurns()
#: Every forward pass of a computation first makes way for queued page runs (PageTurns.make_way).
torch.nn.modules.module.register_module_forward_pre_hook(lambda module, args: PAGE_TURNS.make_way())


def page_turn() -> ContextManager:
    """A page's run, in its turn: ``with page_turn(): page()`` (``PageTurns.turn``)."""
    return PAGE_TURNS.turn()


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
        return server_compute().get(key, compute, waiting, aside=PAGE_TURNS.step_out)[0]
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
