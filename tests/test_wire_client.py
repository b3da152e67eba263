"""The load benchmark's wire client (benchmarks/wire.py) without a server: asking for a page drops
the old page's fragment timers first, as the browser's page change does (a poll of the old page
sent after the request would be folded into it by the server and cut the new page's run short)."""

from __future__ import annotations

import asyncio
import sys

from interp_core import paths

sys.path.insert(0, str(paths.PROJECT_ROOT))
from benchmarks.wire import WireSession  # noqa: E402


class _Socket:
    """Records what the session sends (the websocket's end)."""

    def __init__(self):
        self.sent = []

    async def send(self, data: bytes) -> None:
        self.sent.append(data)


def test_asking_for_a_page_cancels_the_old_pages_fragment_timers_before_it_sends():
    from streamlit.proto.BackMsg_pb2 import BackMsg

    async def scenario():
        session = WireSession("http://127.0.0.1:1")
        session._ws = socket = _Socket()
        poll = asyncio.create_task(session._rerun_fragment("follow", 0.01))
        session._fragments["follow"] = poll
        await asyncio.sleep(0.05)  # the old page's poll runs
        polls = len(socket.sent)
        await session.load("explore?image=8&run=1")
        await asyncio.sleep(0.05)
        return session, socket, polls, poll

    session, socket, polls, poll = asyncio.run(scenario())
    assert polls >= 1 and poll.cancelled() and session._fragments == {}
    assert len(socket.sent) == polls + 1  # the page request, and no poll after it
    request = BackMsg()
    request.ParseFromString(socket.sent[-1])
    assert (request.rerun_script.page_name, request.rerun_script.query_string) == ("explore", "image=8&run=1")
    assert not request.rerun_script.fragment_id
    assert [kind for _, kind, _ in session.events] == ["request"]
