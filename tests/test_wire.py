"""The load benchmark's browserless session (benchmarks/wire.py) against the real app server: what
it records must be what a browser would get, or the classroom figures measure nothing."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from interp_core import paths

sys.path.insert(0, str(paths.PROJECT_ROOT))
from app_support.precompute import PRECOMPUTE_ENV  # noqa: E402
from benchmarks.bench_load import _delivered  # noqa: E402
from benchmarks.wire import WireSession  # noqa: E402
from tools.app_driver import app_server  # noqa: E402

pytestmark = pytest.mark.integration


async def _visit(url: str, targets: list[str], wait: float = 120.0) -> tuple[WireSession, list[float]]:
    """Open ``targets`` in turn in one session, each once the previous run has finished; the session
    and when each was asked for."""
    session, asked = WireSession(url), []
    try:
        for i, target in enumerate(targets):
            asked.append(time.perf_counter())
            await (session.open(target) if i == 0 else session.load(target))
            deadline = time.perf_counter() + wait
            while not any(t >= asked[-1] and kind == "finished" for t, kind, _ in session.events):
                assert time.perf_counter() < deadline, f"{target}: no end of run after {wait:.0f} s"
                await asyncio.sleep(0.05)
    finally:
        await session.close()
    return session, asked


def test_a_share_link_over_the_wire_gets_the_results_and_their_images():
    with app_server(env={PRECOMPUTE_ENV: "0"}) as url:
        session, asked = asyncio.run(_visit(url, [
            "explore?dataset=mnist&split=demo&source=gallery&image=3&attack=fgsm&run=1",
            "explore?dataset=mnist&split=demo&source=gallery&image=3&attack=bogus&run=1"]))
    assert session.errors == []
    results = _delivered(session.events, ("Results for: MNIST #3 ", " · FGSM"), asked[0])
    assert results is not None and 0 < results[1] <= results[0]
    assert session.images >= 3  # the maps of every explainer, at least
    # the second link's unknown attack: the page says so (a warning) and shows the link's default attack
    warnings = [text for t, kind, text in session.events if t >= asked[1] and kind == "warning"]
    assert any("attack=bogus" in text for text in warnings), warnings
