"""A user's session held over Streamlit's own websocket protocol, without a browser: for load
benchmarks whose users' browsers would run on their own machines (a class's students).

The session does what the app's page does in a browser, minus the drawing: it asks for runs of a
page's script (``BackMsg.rerun_script``: the page's name and query string), reruns each fragment
that asks for it at the fragment's interval (``ForwardMsg.auto_rerun``; like the browser, it drops
every timer when it asks for a page, and when a run of the whole page starts),
opens the views the follow-the-teacher component asks for (the component's ``url`` in its JSON
data: the page the browser's history would load), and downloads every image a run sends (the
``/media/`` files an ``<img>`` loads). It sends no widget states: the server keeps each widget's
last value, as it does for a rerun in which the user changed nothing.

``events`` has the format of bench_load's page listener: (time.perf_counter(), "request" with the
query string | "open" with the URL the follow component asked to open | "text" with a markdown or heading element's text | "warning" with a warning's text |
"finished" with the run's end status); a run's "finished" is recorded once its images have
arrived too. ``images`` counts the images downloaded, ``errors`` what went wrong (exceptions and
error alerts the server sent, failed downloads, a dropped connection).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from urllib.parse import urlsplit

#: The component a follower's page draws to open the teacher's view (app_support/classroom.py).
OPEN_VIEW_COMPONENT = "interp_lab.open_class_view"


class WireSession:
    """One session of the app at ``url`` (``http://host:port``), held by an asyncio task."""

    def __init__(self, url: str):
        self.url = url
        self.events: list[tuple[float, str, str]] = []
        self.errors: list[str] = []
        self.images = 0
        self._ws = None
        self._page_hash = ""
        self._query = ""
        self._fragments: dict[str, asyncio.Task] = {}
        self._media: list[asyncio.Task] = []
        self._view_version = 0
        self._tasks: list[asyncio.Task] = []

    async def open(self, target: str) -> None:
        """Connect and load ``target``: a page's path with its query ("lesson?follow=K7QD")."""
        import websockets

        self._ws = await websockets.connect(self.url.replace("http", "ws", 1) + "/_stcore/stream",
                                            subprotocols=["streamlit"], origin=self.url, max_size=None)
        self._tasks.append(asyncio.create_task(self._read()))
        await self.load(target)

    async def load(self, target: str) -> None:
        """Ask for a run of the page ``target`` names (path and query), as opening its URL does."""
        path = urlsplit(target)
        self._query = path.query
        self._drop_timers()  # as the browser does on a page change: no poll of the old page hijacks the new one
        await self._send(page_name=path.path.strip("./"), query_string=path.query, is_history_navigation=True)

    async def close(self) -> None:
        for task in [*self._tasks, *self._fragments.values(), *self._media]:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()

    def _drop_timers(self) -> None:
        for task in self._fragments.values():
            task.cancel()
        self._fragments.clear()

    async def _send(self, **state) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        for name, value in state.items():
            setattr(msg.rerun_script, name, value)
        if not state.get("fragment_id"):
            self.events.append((time.perf_counter(), "request", state.get("query_string", "")))
        await self._ws.send(msg.SerializeToString())

    async def _rerun_fragment(self, fragment: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._send(page_script_hash=self._page_hash, query_string=self._query, fragment_id=fragment,
                             is_auto_rerun=True)

    async def _fetch(self, path: str) -> None:
        def get() -> None:
            with urllib.request.urlopen(self.url + path, timeout=120) as response:
                response.read()

        await asyncio.to_thread(get)
        self.images += 1

    async def _finished(self, status: str, media: list[asyncio.Task]) -> None:
        results = await asyncio.gather(*media, return_exceptions=True)
        self.errors.extend(f"image download: {type(r).__name__}: {r}" for r in results if isinstance(r, Exception))
        self.events.append((time.perf_counter(), "finished", status))

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for data in self._ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                await self._handle(msg, ForwardMsg)
        except Exception as err:  # noqa: BLE001 - a dropped connection is the session's error
            if not isinstance(err, asyncio.CancelledError):
                self.errors.append(f"{type(err).__name__}: {err}")
            raise

    async def _handle(self, msg, ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self._page_hash = msg.new_session.page_script_hash
            if not msg.metadata.run.fragment_ids:  # a run of the whole page: its fragments ask for timers anew
                self._drop_timers()
        elif kind == "page_info_changed":
            self._query = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            fragment, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if fragment not in self._fragments:
                self._fragments[fragment] = asyncio.create_task(self._rerun_fragment(fragment, interval))
        elif kind == "stop_auto_rerun":
            for fragment in msg.stop_auto_rerun.fragment_ids:
                if fragment in self._fragments:
                    self._fragments.pop(fragment).cancel()
        elif kind == "script_finished":
            media, self._media = self._media, []
            self._tasks.append(asyncio.create_task(self._finished(
                ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished), media)))
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            shown = element.WhichOneof("type")
            if shown in ("markdown", "heading"):
                self.events.append((time.perf_counter(), "text", getattr(element, shown).body))
            elif shown == "imgs":
                self._media += [asyncio.create_task(self._fetch(img.url)) for img in element.imgs.imgs
                                if img.url.startswith("/media/")]
            elif shown == "exception":
                self.errors.append(f"exception: {element.exception.type}: {element.exception.message}")
            elif shown == "alert" and element.alert.format == element.alert.ERROR:
                self.errors.append(f"error: {element.alert.body}")
            elif shown == "alert" and element.alert.format == element.alert.WARNING:
                self.events.append((time.perf_counter(), "warning", element.alert.body))
            elif shown == "bidi_component" and element.bidi_component.component_name == OPEN_VIEW_COMPONENT:
                data = json.loads(element.bidi_component.json or "{}")
                if data.get("version") and data["version"] != self._view_version:
                    self._view_version = data["version"]
                    self.events.append((time.perf_counter(), "open", data["url"]))
                    await self.load(data["url"])
