"""Many users against one real server on localhost, in two scenarios; each reports its errors (must
be 0), latencies (p50/p95) and the server's peak memory (resident set of the server's process
tree, sampled from /proc), with the machine's load average.

``explore`` (the default): 8 concurrent browser sessions, each driving Explore (MNIST and CIFAR-10
sessions, four attacks) for a bounded number of fresh attacks within a total time limit; latency
from the click to the results. Every click asks for a new image first (the Random button), so
results rarely come from the cache. The start-up precompute of the lessons' views is off here.

``classroom``: a class. The server starts with its start-up precompute of the lesson's views
(app_support/precompute.py) and the class begins once it is done. A teacher session (a browser
page) opens a class on the Lesson page and steps through the guided lesson: Next, Reveal, "Open
this view", then a pause. The followers joined by the class's ``?follow=CODE`` link; all but
``--browser-followers`` of them are wire sessions (benchmarks/wire.py): they speak Streamlit's
websocket protocol, follow the class and download every image, but draw nothing, because a
student's browser draws on the student's own machine; 30-odd headless Chromiums on the server's 2
cores measured the browsers instead (an earlier run: their CPU was 13 times the server's). Per
follower and step, from the teacher's click on "Open this view": until a wire follower has the
view's results, the end of its run and every image ("received"); until a browser follower's page
shows the results, drawn ("shown"; those browsers run at the lowest priority, nice
``BROWSER_NICE``); and the server's own time for the follower's run of the view (from its request
to the run's last message). The branching sessions, wire sessions too, meanwhile open Explore share
links of fresh gallery images, one attack after another with ``--think`` seconds between a result
and the next link. Each step also reports the CPU seconds the server, the browsers and the wire
clients used.

One headless Chromium, one browser context per browser session (Playwright's async API).

``python -m benchmarks.bench_load [--sessions 8] [--clicks 3] [--limit 600]`` writes
``benchmarks/load.json``; ``python -m benchmarks.bench_load --scenario classroom [--followers 30]
[--browser-followers 2] [--branching 8] [--steps 6] [--pause 5] [--think 5]`` writes
``benchmarks/load_classroom.json``. Each writes its section of benchmarks/RESULTS.md, and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

from app_support.precompute import PRECOMPUTE_ENV
from benchmarks.results import record
from benchmarks.wire import WireSession
from tools.app_driver import _SCRIPT_STATE, CHROMIUM, CHROMIUM_FLAGS, RENDERED, app_server

OUT = Path(__file__).resolve().parent / "load.json"
CLASSROOM_OUT = Path(__file__).resolve().parent / "load_classroom.json"
DATASETS = ("MNIST", "CIFAR-10")
ATTACK_MIX = ("pgd", "fgsm", "pgd-margin", "paper-pgd")
VIEWPORT = {"width": 1400, "height": 1000}
#: How long a click may wait (Playwright's default is 30 s): a click that changes the page waits for the
#: page, which takes longer than that on a server with a class on it.
CLICK_TIMEOUT_MS = 120_000
#: The classroom's browsers' priority (the lowest): they stand in for the students' own machines.
BROWSER_NICE = 19
RESULTS_FOR = """(image) => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
        .some(c => c.innerText.startsWith('Results for: ' + image + ' '))
    && document.querySelector('[data-testid="stTable"] table')"""
ERRORS = "[data-testid='stException'], [data-testid='stAlertContentError']"


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class MemorySampler(threading.Thread):
    """Samples tree_rss(pid) and the 1-minute load average every ``every`` seconds until stopped;
    keeps the peaks."""

    def __init__(self, pid: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.samples, self.load_peak = pid, every, 0, 0, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.load_peak = max(self.load_peak, os.getloadavg()[0])
            self.samples += 1
            self._stop_event.wait(self.every)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


async def _wait_idle(page, started: bool = False, timeout: float = 300_000) -> None:
    """app_driver.wait_idle for the async API."""
    if not started:
        try:
            await page.wait_for_function(f"() => ({_SCRIPT_STATE})() !== 'notRunning'", timeout=1000)
        except Exception:  # noqa: BLE001 - the run was over before we looked, or there was none
            pass
    await page.wait_for_function(f"() => ({_SCRIPT_STATE})() === 'notRunning'", timeout=timeout)


async def _wait_changed(picker, shown: str, timeout: float = 120.0) -> None:
    """Wait until the image picker shows another image than ``shown``: on a busy server the rerun
    of "Random image" starts late, and reading the picker before it would name the old image. (A
    random draw of the same image, 1 in 300, just waits out the timeout.)"""
    deadline = time.monotonic() + timeout
    while await picker.input_value() == shown and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def _new_context(browser):
    """A fresh browser context (one user) of the benchmark's viewport and click timeout."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(CLICK_TIMEOUT_MS)
    return context


async def session(browser, url: str, index: int, clicks: int, deadline: float, report: dict) -> None:
    """One user: open Explore, choose a dataset and an attack, then up to ``clicks`` fresh attacks
    before ``deadline`` (time.monotonic()); latencies and errors go into ``report``."""
    from interp_core.attacks import ATTACKS

    dataset, attack = DATASETS[index % 2], ATTACK_MIX[(index // 2) % len(ATTACK_MIX)]
    context = await _new_context(browser)
    page = await context.new_page()
    try:
        await page.goto(f"{url}/explore")
        await page.get_by_role("button", name="Run attack").wait_for(timeout=300_000)
        sidebar = page.locator("[data-testid='stSidebar']")
        if dataset != "MNIST":
            await sidebar.get_by_text(dataset, exact=True).click()
            await _wait_idle(page)
        if attack != "pgd":
            await sidebar.get_by_role("combobox", name="Attack", exact=True).click()
            await page.get_by_role("option", name=ATTACKS[attack].label, exact=True).click()
            await _wait_idle(page)
        for _ in range(clicks):
            if time.monotonic() > deadline:
                report["not_run"] += 1
                continue
            picker = page.get_by_role("combobox", name="Image", exact=True)
            shown = await picker.input_value()
            await page.get_by_role("button", name="Random image").click()
            await _wait_changed(picker, shown)
            await _wait_idle(page)
            image = await picker.input_value()
            image = f"{dataset} {image.split(' · ')[0].strip()}"
            report["requests"] += 1
            start = time.perf_counter()
            await page.get_by_role("button", name="Run attack").click()
            await page.wait_for_function(RESULTS_FOR, arg=image, timeout=max(deadline - time.monotonic(), 1) * 1000)
            await _wait_idle(page, started=True)
            await page.wait_for_function(RENDERED, timeout=60_000)
            report["latency"].append(time.perf_counter() - start)
            report["by_kind"].setdefault(f"{dataset} {attack}", []).append(time.perf_counter() - start)
            caption = await page.locator("[data-testid='stCaptionContainer']").filter(
                has_text="Results for: " + image + " ").first.inner_text()
            if ATTACKS[attack].label not in caption:  # the session must run the attack it chose
                report["errors"].append(f"session {index}: results of another attack: {caption}")
            shown = [await e.inner_text() for e in await page.locator(ERRORS).all()]
            report["errors"].extend(f"session {index} ({dataset}, {attack}): {e}" for e in shown)
    except Exception as err:  # noqa: BLE001 - a failed session is reported, not raised
        report["errors"].append(f"session {index} ({dataset}, {attack}): {type(err).__name__}: "
                                f"{str(err).splitlines()[0]}")
    finally:
        await context.close()


async def _drive(url: str, sessions: int, clicks: int, limit: float) -> dict:
    from playwright.async_api import async_playwright

    report = {"requests": 0, "not_run": 0, "latency": [], "by_kind": {}, "errors": []}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        deadline = time.monotonic() + limit
        await asyncio.gather(*(session(browser, url, i, clicks, deadline, report) for i in range(sessions)))
        await browser.close()
    return report


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(sessions: int = 8, clicks: int = 3, limit: float = 600.0) -> dict:
    """Start a server, drive ``sessions`` concurrent users for at most ``limit`` seconds; the figures."""
    load_before = os.getloadavg()
    procs: list = []
    with app_server(env={PRECOMPUTE_ENV: "0"}, started=procs) as url:
        sampler = MemorySampler(procs[0].pid)
        sampler.start()
        idle_rss = tree_rss(procs[0].pid)
        started = time.perf_counter()
        report = asyncio.run(_drive(url, sessions, clicks, limit))
        wall = time.perf_counter() - started
        peak = sampler.stop()
    latency = report["latency"]
    return {
        "sessions": sessions, "clicks_per_session": clicks, "time_limit_s": limit, "wall_s": round(wall, 1),
        "requests": report["requests"], "completed": len(latency), "not_run": report["not_run"],
        "errors": len(report["errors"]), "error_messages": report["errors"][:20],
        "error_kinds": _error_kinds(report["errors"]),
        "latency_p50_s": round(statistics.median(latency), 2) if latency else None,
        "latency_p95_s": round(_percentile(latency, 0.95), 2) if latency else None,
        "latency_max_s": round(max(latency), 2) if latency else None,
        "latency_median_by_kind_s": {k: round(statistics.median(v), 2) for k, v in sorted(report["by_kind"].items())},
        "server_rss_idle_mb": round(idle_rss / 2**20), "server_rss_peak_mb": round(peak / 2**20),
        "memory_samples": sampler.samples,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "torch_threads": os.environ.get("INTERP_CORE_THREADS", "(default)"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def markdown(figures: dict) -> str:
    """The figures as a RESULTS.md section."""
    kinds = "\n".join(f"| {k} | {v:.2f} |" for k, v in figures["latency_median_by_kind_s"].items())
    return (
        f"## Many users (benchmarks/bench_load.py)\n\n"
        f"{figures['sessions']} concurrent browser sessions (one Chromium, one context each) on one Streamlit "
        f"server on localhost, Explore with the page's default models and explainers, MNIST and CIFAR-10 "
        f"sessions and four attacks ({', '.join(ATTACK_MIX)}); each session asks for a new image and runs "
        f"the attack up to {figures['clicks_per_session']} times within {figures['time_limit_s']:.0f} s in all.\n\n"
        f"| figure | value |\n|---|---|\n"
        f"| attack requests | {figures['requests']} ({figures['completed']} completed, {figures['not_run']} "
        f"not started before the time limit) |\n"
        f"| errors | {figures['errors']} |\n"
        f"| click-to-results latency p50 / p95 / max | {figures['latency_p50_s']} s / {figures['latency_p95_s']} s / "
        f"{figures['latency_max_s']} s |\n"
        f"| server memory (RSS of its process tree) idle / peak | {figures['server_rss_idle_mb']} MB / "
        f"{figures['server_rss_peak_mb']} MB ({figures['memory_samples']} samples) |\n"
        f"| wall time | {figures['wall_s']} s |\n"
        f"| machine | {figures['cpus']} CPUs, load average before {figures['load_average_before']}, after "
        f"{figures['load_average_after']}; torch threads per request {figures['torch_threads']}; "
        f"{figures['date']} |\n\n"
        f"Median latency by session kind:\n\n| dataset attack | median s |\n|---|---|\n{kinds}\n")


def section(figures: dict) -> dict:
    """The load test's figures as a section of benchmarks/RESULTS.md (see benchmarks/results.py)."""
    return {
        "settings": {"sessions": figures["sessions"], "clicks per session": figures["clicks_per_session"],
                     "time limit s": figures["time_limit_s"], "torch threads per request": figures["torch_threads"]},
        "tables": {
            "8 concurrent Explore sessions": [{
                "requests": figures["requests"], "completed": figures["completed"], "errors": figures["errors"],
                "p50 s": figures["latency_p50_s"], "p95 s": figures["latency_p95_s"],
                "max s": figures["latency_max_s"], "server RSS idle MB": figures["server_rss_idle_mb"],
                "server RSS peak MB": figures["server_rss_peak_mb"], "wall s": figures["wall_s"]}],
            "median click-to-results by session kind": [
                {"dataset attack": kind, "median s": value}
                for kind, value in figures["latency_median_by_kind_s"].items()],
        },
        "notes": [f"measured {figures['date']} on {figures['cpus']} CPUs; load average before "
                  f"{figures['load_average_before']}, after {figures['load_average_after']} (latencies are wall "
                  "time, so they include what other work took from the 2 cores)"],
    }


#: The results of a view in a page: a caption that starts with the first text and holds the second,
#: and the numbers table.
VIEW_SHOWN = """([start, part]) => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
        .some(c => c.innerText.startsWith(start) && c.innerText.includes(part))
    && document.querySelector('[data-testid="stTable"] table')"""
PRECOMPUTED = re.compile(r"computed when the server started \((\d+) of (\d+) results in (\d+) s\)")


def view_caption(step) -> tuple[str, str]:
    """(start, part) of the results caption of a lesson step's view (see VIEW_SHOWN)."""
    from interp_core.attacks import ATTACKS
    from interp_core.datasets import DATASETS

    params = step.params
    label = DATASETS[params.get("dataset", "mnist")].label
    if step.page == "pages/random_start.py":
        return f"Results for: {label} #{params['image']} · {params['model']}", f"eps={float(params['eps']):g}"
    return f"Results for: {label} #{params['image']} ", f" · {ATTACKS[params['attack']].label} · "


async def _wait_precomputed(browser, url: str, timeout: float = 1200.0) -> dict:
    """Reload the Lesson page until it says the start-up precompute is done; its figures."""
    context = await _new_context(browser)
    page = await context.new_page()
    deadline = time.monotonic() + timeout
    try:
        while True:
            await page.goto(f"{url}/lesson")
            await page.get_by_role("button", name="Next").wait_for(timeout=300_000)
            text = " ".join(await page.locator("[data-testid='stCaptionContainer']").all_inner_texts())
            found = PRECOMPUTED.search(text)
            if found:
                done, views, seconds = map(int, found.groups())
                return {"precomputed": done, "views": views, "precompute_s": seconds}
            if time.monotonic() > deadline:
                raise TimeoutError(f"the precompute did not finish within {timeout:.0f} s: {text[:300]}")
            await asyncio.sleep(5)
    finally:
        await context.close()


async def _open_class(teacher) -> str:
    """Open a class in the teacher's Lesson page; its code."""
    await teacher.get_by_role("button", name="Next").wait_for(timeout=300_000)
    await _wait_idle(teacher)  # a click during a run can be lost
    await teacher.get_by_text("Class", exact=True).click()
    await teacher.get_by_role("button", name="Teach").click()
    code = teacher.get_by_text(re.compile(r"^Class code [A-Z2-9]{4}$"))
    await code.wait_for(timeout=120_000)
    return (await code.inner_text()).split()[-1]


def _listen(page) -> list[tuple[float, str, str]]:
    """The messages between ``page`` and the server from now on, as they pass: (time.perf_counter(),
    "request" (the page asks for a run of its script) | "text" (a markdown or heading element's
    text) | "finished" with the run's end status)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    events: list[tuple[float, str, str]] = []

    def sent(payload) -> None:
        msg = BackMsg()
        try:
            msg.ParseFromString(payload if isinstance(payload, bytes) else b"")
        except Exception:  # noqa: BLE001 - not a BackMsg: nothing to record
            return
        if msg.WhichOneof("type") == "rerun_script":
            events.append((time.perf_counter(), "request", msg.rerun_script.query_string))

    def frame(payload) -> None:
        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        try:
            msg.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - not a ForwardMsg: nothing to record
            return
        kind = msg.WhichOneof("type")
        shown = msg.delta.new_element.WhichOneof("type") if kind == "delta" else None
        if shown in ("markdown", "heading"):
            events.append((time.perf_counter(), "text", getattr(msg.delta.new_element, shown).body))
        elif kind == "script_finished":
            events.append((time.perf_counter(), "finished", ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)))

    page.on("websocket", lambda ws: (ws.on("framereceived", frame), ws.on("framesent", sent)))
    return events


def _delivered(events: list[tuple[float, str, str]], caption: tuple[str, str],
               since: float) -> tuple[float, float] | None:
    """By ``events`` (``_listen``), the run that sent the view's results caption (see VIEW_SHOWN):
    seconds from ``since`` until it finished, and seconds from the page's request of that run until
    it finished (the server's own time); None when no such run finished."""
    start, part = caption
    sent = next((t for t, kind, text in events if t >= since and kind == "text"
                 and start in text and part in text), None)
    finished = next((t for t, kind, text in events if sent is not None and t >= sent and kind == "finished"
                     and text == "FINISHED_SUCCESSFULLY"), None)
    asked = max((t for t, kind, _ in events if kind == "request" and sent is not None and since <= t <= sent),
                default=None)
    if finished is None or asked is None:
        return None
    return finished - since, finished - asked


def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds used so far by the processes ``pids`` (read from /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _browser_pids() -> list[int]:
    """The running Chromium processes."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and b"chromium" in Path(f"/proc/{entry}/cmdline").read_bytes():
                pids.append(int(entry))
        except OSError:
            pass
    return pids


async def _follower(browser, url: str, code: str):
    """A student's page that follows class ``code`` (its ?follow= link), and the messages it gets
    (``_listen``)."""
    context = await _new_context(browser)
    page = await context.new_page()
    page.events = _listen(page)
    await page.goto(f"{url}/lesson?{urlencode({'follow': code})}")
    await page.get_by_text(f"Following class {code}").wait_for(timeout=300_000)
    return page


async def _until(found, session: WireSession, timeout: float, what: str):
    """Poll ``found()`` until it returns something other than None; TimeoutError saying ``what``
    did not arrive within ``timeout`` seconds (the events keep their own times, so polling costs no
    accuracy)."""
    deadline = time.perf_counter() + timeout
    while (result := found()) is None:
        if time.perf_counter() > deadline:
            asked = next((text for _, kind, text in reversed(session.events) if kind == "request"), "")
            raise TimeoutError(f"no {what} after {timeout:.0f} s (its last request: {asked[:80]})")
        await asyncio.sleep(0.05)
    return result


def _revealed(events: list[tuple[float, str, str]], since: float) -> float | None:
    """Seconds from ``since`` until the first run of a revealed lesson step (its request's query has
    reveal=1) finished, by ``events`` (``_listen``); None before."""
    asked = next((t for t, kind, text in events if t >= since and kind == "request" and "reveal=1" in text), None)
    return next((t - since for t, kind, text in events if asked is not None and t >= asked and kind == "finished"
                 and text == "FINISHED_SUCCESSFULLY"), None)


async def _wire_follower(url: str, code: str) -> WireSession:
    """A student's session over the wire (benchmarks/wire.py) that follows class ``code``."""
    student = WireSession(url)
    await student.open(f"lesson?{urlencode({'follow': code})}")
    await _until(lambda: next((True for _, kind, text in student.events
                               if kind == "text" and f"Following class **{code}**" in text), None),
                 student, 300, "'Following class'")
    return student


async def _shown(page, caption: tuple[str, str], since: float, timeout: float) -> float:
    """Seconds from ``since`` (time.perf_counter()) until ``page`` shows the view's results, drawn;
    TimeoutError naming the stage that took longer than ``timeout`` seconds in all."""
    deadline = time.perf_counter() + timeout
    for stage, wait in (("results", lambda ms: page.wait_for_function(VIEW_SHOWN, arg=list(caption), timeout=ms)),
                        ("end of the run", lambda ms: _wait_idle(page, started=True, timeout=ms)),
                        ("images and charts", lambda ms: page.wait_for_function(RENDERED, timeout=ms))):
        try:
            await wait(max(deadline - time.perf_counter(), 1) * 1000)
        except Exception as err:  # noqa: BLE001 - Playwright's TimeoutError, said with its stage
            raise TimeoutError(f"no {stage} after {timeout:.0f} s at {page.url}") from err
    return time.perf_counter() - since


async def _wire_branch(url: str, index: int, think: float, timeout: float, report: dict, stop: asyncio.Event) -> None:
    """A student who branched off, over the wire: Explore share links of fresh gallery images (a
    dataset and an attack by ``index``, as ``session`` chooses them), one after another with
    ``think`` seconds between a result and the next link, until ``stop``; latency from the link's
    request to its results, images included. An image the model misclassifies is refused by the
    page (counted in ``refused``); a full queue answers busy (``busy``)."""
    import random

    from interp_core.attacks import ATTACKS
    from interp_core.data import load_dataset

    dataset, attack = ("mnist", "cifar10")[index % 2], ATTACK_MIX[(index // 2) % len(ATTACK_MIX)]
    label = DATASETS[index % 2]
    images = len(load_dataset(dataset, "demo"))
    draw = random.Random(index)
    student = WireSession(url)
    try:
        await student.open("explore")
        while not stop.is_set():
            image = draw.randrange(images)
            since = time.perf_counter()
            report["requests"] += 1
            await student.load("explore?" + urlencode({"dataset": dataset, "split": "demo", "source": "gallery",
                                                       "image": image, "attack": attack, "run": 1}))
            caption = (f"Results for: {label} #{image} ", f" · {ATTACKS[attack].label} · ")

            def answered():
                run = _delivered(student.events, caption, since)
                if run is not None:
                    return "results", run[0]
                notice = next((text for t, kind, text in student.events if t >= since and kind == "warning"
                               and ("Refused" in text or "busy" in text)), None)
                if notice is not None and any(t >= since and kind == "finished" for t, kind, _ in student.events):
                    return ("busy" if "busy" in notice else "refused"), None
                return None

            outcome, seconds = await _until(answered, student, timeout, f"results of {label} #{image}")
            if outcome == "results":
                report["latency"].append(seconds)
                report["by_kind"].setdefault(f"{label} {attack}", []).append(seconds)
            else:
                report[outcome] += 1
            await asyncio.sleep(think)
    except Exception as err:  # noqa: BLE001 - a failed session is reported, not raised
        report["errors"].append(f"branching {index} ({label}, {attack}): {type(err).__name__}: {err}")
    finally:
        report["errors"].extend(f"branching {index} ({label}, {attack}): {e}" for e in student.errors)
        await student.close()


async def _teach(browser, url: str, server_pid: int, followers: int, shown_by: int, branching: int, steps,
                 pause: float, think: float, timeout: float) -> dict:
    report = {"by_step": [], "errors": [], "images": 0,
              "branching": {"requests": 0, "refused": 0, "busy": 0, "latency": [], "by_kind": {}, "errors": []}}
    context = await _new_context(browser)
    teacher = await context.new_page()
    await teacher.goto(f"{url}/lesson")
    code = await _open_class(teacher)
    pages = await asyncio.gather(*(_follower(browser, url, code) for _ in range(shown_by)))
    wired = await asyncio.gather(*(_wire_follower(url, code) for _ in range(followers - shown_by)))
    stop = asyncio.Event()
    branches = [asyncio.create_task(_wire_branch(url, i, think, timeout, report["branching"], stop))
                for i in range(branching)]
    sidebar = teacher.locator("[data-testid='stSidebar']")
    for i, step in enumerate(steps):
        if i:  # back to the lesson (it opens at the step it showed), then the next step
            await sidebar.locator("[data-testid='stPageLink']").filter(has_text="Lesson").click()
            await teacher.get_by_role("heading", name=steps[i - 1].title).wait_for(timeout=timeout * 1000)
            await _wait_idle(teacher, timeout=timeout * 1000)
            await teacher.get_by_role("button", name="Next").click()
        await teacher.get_by_role("heading", name=step.title).wait_for(timeout=timeout * 1000)
        await _wait_idle(teacher, timeout=timeout * 1000)  # a click during the step's run could be lost
        revealed = time.perf_counter()
        await teacher.get_by_text("Reveal", exact=True).click()
        await _wait_idle(teacher, timeout=timeout * 1000)
        # the teacher reads the answer out once the class sees it, then opens the view
        reveals = await asyncio.gather(*(_until(lambda s=s: _revealed(s.events, revealed), s, timeout, "reveal")
                                         for s in wired), return_exceptions=True)
        view = teacher.get_by_text("Open this view (the attack runs)")
        await view.wait_for(timeout=timeout * 1000)
        caption = view_caption(step)
        browsers = _browser_pids()
        cpu = _cpu_seconds([server_pid]), _cpu_seconds(browsers), time.process_time()
        started = time.perf_counter()
        await view.click()
        waits = [_shown(p, caption, started, timeout) for p in [teacher, *pages]]
        waits += [_until(lambda s=s: _delivered(s.events, caption, started), s, timeout, "view")
                  for s in wired]
        results = await asyncio.gather(*waits, return_exceptions=True)
        cpu = (_cpu_seconds([server_pid]) - cpu[0], _cpu_seconds(browsers) - cpu[1], time.process_time() - cpu[2])
        names = ["teacher", *(f"browser follower {j}" for j in range(shown_by)),
                 *(f"follower {j}" for j in range(len(wired)))]
        for who, result in [*zip(names[1 + shown_by:], reveals), *zip(names, results)]:
            if isinstance(result, Exception):
                report["errors"].append(f"step {i + 1}, {who}: {type(result).__name__}: {str(result).splitlines()[0]}")
        shown = [s for s in results[1:1 + shown_by] if isinstance(s, float)]
        received = [r for r in results[1 + shown_by:] if isinstance(r, tuple)]
        runs = received + [d for p in pages if (d := _delivered(p.events, caption, started)) is not None]
        for j, page in enumerate([teacher, *pages]):
            alerts = [await e.inner_text() for e in await page.locator(ERRORS).all()]
            report["errors"].extend(f"step {i + 1}, {names[j]}: {a}" for a in alerts)
        report["by_step"].append({"step": i + 1, "title": step.title, "page": step.page,
                                  "teacher_s": results[0] if isinstance(results[0], float) else None,
                                  "shown": shown, "received": [r for r, _ in received],
                                  "revealed": [r for r in reveals if isinstance(r, float)],
                                  "served": [s for _, s in runs], "server_cpu_s": cpu[0], "browsers_cpu_s": cpu[1],
                                  "wire_cpu_s": cpu[2]})
        await asyncio.sleep(pause)
    stop.set()
    await asyncio.gather(*branches)
    report["errors"] += report["branching"]["errors"]
    for j, student in enumerate(wired):
        report["errors"].extend(f"follower {j}: {e}" for e in student.errors)
        report["images"] += student.images
        await student.close()
    await context.close()
    for page in pages:
        await page.context.close()
    return report


async def _drive_classroom(url: str, followers: int, shown_by: int, branching: int, steps, pause: float,
                           think: float, timeout: float, sampler: MemorySampler) -> tuple[dict, dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        for pid in _browser_pids():  # the pages it opens later start from these, with their priority
            os.setpriority(os.PRIO_PROCESS, pid, BROWSER_NICE)
        precompute = await _wait_precomputed(browser, url)
        sampler.start()  # the class's figures, from here on
        report = await _teach(browser, url, sampler.pid, followers, shown_by, branching, steps, pause, think, timeout)
        await browser.close()
    return precompute, report


def run_classroom(followers: int = 30, shown_by: int = 2, branching: int = 8, steps: int = 6, pause: float = 5.0,
                  think: float = 5.0, timeout: float = 120.0) -> dict:
    """Start a server (precompute on), wait for its precompute, then the class: a teacher through the
    first ``steps`` steps of the guided lesson with ``pause`` seconds after each; ``followers``
    following sessions, ``shown_by`` of them browser pages and the rest wire sessions; ``branching``
    wire sessions attacking images of their own with ``think`` seconds between results; ``timeout``
    seconds for a view to arrive. The figures."""
    from app_support.lessons import GUIDED

    chosen = GUIDED.steps[:steps]
    load_before = os.getloadavg()
    procs: list = []
    with app_server(env={PRECOMPUTE_ENV: "1"}, started=procs, timeout=120.0) as url:
        sampler = MemorySampler(procs[0].pid)
        started = time.perf_counter()
        precompute, report = asyncio.run(_drive_classroom(url, followers, shown_by, branching, chosen, pause, think,
                                                          timeout, sampler))
        wall = time.perf_counter() - started
        peak = sampler.stop()
    by_step = report["by_step"]
    shown, received, served, revealed = ([v for step in by_step for v in step[name]]
                                         for name in ("shown", "received", "served", "revealed"))
    branch = report["branching"]

    def rounded(values: list[float], q: float) -> float | None:
        return round(_percentile(values, q), 2) if values else None

    def spread(values: list[float]) -> dict:
        return {"p50_s": rounded(values, 0.5), "p95_s": rounded(values, 0.95),
                "max_s": round(max(values), 2) if values else None}

    return {
        "scenario": "classroom", "followers": followers, "browser_followers": shown_by,
        "wire_followers": followers - shown_by, "branching": branching, "steps": len(chosen), "pause_s": pause,
        "think_s": think, "view_timeout_s": timeout, **precompute, "wall_s": round(wall, 1),
        "received": {"expected": (followers - shown_by) * len(chosen), "count": len(received), **spread(received)},
        "shown": {"expected": shown_by * len(chosen), "count": len(shown), **spread(shown)},
        "served": spread(served), "revealed": {"count": len(revealed), **spread(revealed)},
        "images_downloaded": report["images"],
        "server_cpu_s": round(sum(s["server_cpu_s"] for s in by_step), 1),
        "browsers_cpu_s": round(sum(s["browsers_cpu_s"] for s in by_step), 1),
        "wire_cpu_s": round(sum(s["wire_cpu_s"] for s in by_step), 1),
        "by_step": [{"step": s["step"], "title": s["title"], "page": s["page"],
                     "teacher_s": None if s["teacher_s"] is None else round(s["teacher_s"], 2),
                     "received": spread(s["received"]), "shown": spread(s["shown"]),
                     "revealed": spread(s["revealed"]),
                     "served_p95_s": rounded(s["served"], 0.95), "server_cpu_s": round(s["server_cpu_s"], 1),
                     "browsers_cpu_s": round(s["browsers_cpu_s"], 1), "wire_cpu_s": round(s["wire_cpu_s"], 1)}
                    for s in by_step],
        "branching_requests": branch["requests"], "branching_completed": len(branch["latency"]),
        "branching_refused": branch["refused"], "branching_busy": branch["busy"],
        "branching_p50_s": rounded(branch["latency"], 0.5), "branching_p95_s": rounded(branch["latency"], 0.95),
        "branching_median_by_kind_s": {k: round(statistics.median(v), 2) for k, v in sorted(branch["by_kind"].items())},
        "errors": len(report["errors"]), "error_messages": report["errors"][:20],
        "error_kinds": _error_kinds(report["errors"]),
        "server_rss_peak_mb": round(peak / 2**20), "memory_samples": sampler.samples,
        "load_average_before": [round(v, 2) for v in load_before], "load_1min_peak": round(sampler.load_peak, 2),
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "torch_threads": os.environ.get("INTERP_CORE_THREADS", "(default)"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _error_kinds(errors: list[str]) -> list[list]:
    """[what went wrong, how often] of ``errors`` ("step 2, follower 7: TimeoutError: ... at URL" or
    "session 3 (...): ..."), the most frequent first: who and where left out, so that 100 pages
    timing out read as one line."""
    kinds = Counter(re.sub(r" at \S+$", "", error.split(": ", 1)[-1]) for error in errors)
    return [[kind, count] for kind, count in kinds.most_common()]


def _goal(figures: dict, *measures: str) -> str:
    """Whether the views' ``measures`` ("received", "shown") met the goal: every view arrived, p95 <= 3 s,
    and no errors in the class."""
    met = figures["errors"] == 0 and all(
        figures[m]["count"] == figures[m]["expected"] and (not figures[m]["expected"] or figures[m]["p95_s"] <= 3.0)
        for m in measures)
    return "met" if met else "NOT met"


def _spread(figure: dict) -> str:
    return f"{figure['p50_s']} s / {figure['p95_s']} s / {figure['max_s']} s"


def classroom_markdown(figures: dict) -> str:
    """The classroom figures as printed text (their RESULTS.md section is classroom_section)."""
    steps = "\n".join(f"| {s['step']} {s['title']} | {s['teacher_s']} | {_spread(s['received'])} | "
                      f"{_spread(s['shown'])} | {s['served_p95_s']} | {s['server_cpu_s']} |"
                      for s in figures["by_step"])
    received, shown = figures["received"], figures["shown"]
    return (
        f"## Classroom (benchmarks/bench_load.py --scenario classroom)\n\n"
        f"{figures['followers']} followers ({figures['wire_followers']} over the wire, {figures['browser_followers']} "
        f"in browser pages) and {figures['branching']} branching sessions ({figures['think_s']:g} s between a result "
        f"and the next attack); the teacher steps through {figures['steps']} lesson views, {figures['pause_s']:g} s "
        f"apart. Start-up precompute: {figures['precomputed']} of {figures['views']} results in "
        f"{figures['precompute_s']} s. Goal (p95 <= 3 s for every view, no errors): "
        f"{_goal(figures, 'received', 'shown')}.\n\n"
        f"| figure | value |\n|---|---|\n"
        f"| teacher's click to a wire follower's results and images received, p50 / p95 / max | {_spread(received)}, "
        f"{received['count']} of {received['expected']} views ({_goal(figures, 'received')}) |\n"
        f"| ... to a browser follower's results drawn, p50 / p95 / max | {_spread(shown)}, {shown['count']} of "
        f"{shown['expected']} views ({_goal(figures, 'shown')}) |\n"
        f"| a follower's request of the view to its last message (the server's time), p50 / p95 / max | "
        f"{_spread(figures['served'])} |\n"
        f"| the teacher's Reveal to a wire follower's revealed step, p50 / p95 / max (before the view opens) | "
        f"{_spread(figures['revealed'])} |\n"
        f"| CPU seconds of the views: server / browsers / wire clients | {figures['server_cpu_s']} / "
        f"{figures['browsers_cpu_s']} / {figures['wire_cpu_s']} |\n"
        f"| errors | {figures['errors']} |\n"
        f"| branching attacks: completed, refused, busy of requested; p50 / p95 | {figures['branching_completed']}, "
        f"{figures['branching_refused']}, {figures['branching_busy']} of {figures['branching_requests']}; "
        f"{figures['branching_p50_s']} s / {figures['branching_p95_s']} s |\n"
        f"| server memory peak (RSS of its process tree) | {figures['server_rss_peak_mb']} MB |\n"
        f"| load average before / 1-min peak / after | {figures['load_average_before']} / "
        f"{figures['load_1min_peak']} / {figures['load_average_after']} ({figures['cpus']} CPUs) |\n"
        f"| wall time | {figures['wall_s']} s |\n\n"
        f"| step | teacher s | received p50 / p95 / max | shown p50 / p95 / max | server's p95 s | server CPU s |\n"
        f"|---|---|---|---|---|---|\n{steps}\n")


def classroom_section(figures: dict) -> dict:
    """The classroom figures as a section of benchmarks/RESULTS.md (see benchmarks/results.py)."""
    received, shown = figures["received"], figures["shown"]
    return {
        "title": "Classroom: a teacher, followers and branching sessions (benchmarks/bench_load.py --scenario "
                 "classroom)",
        "settings": {"followers": figures["followers"], "of them browser pages": figures["browser_followers"],
                     "branching sessions": figures["branching"], "lesson steps": figures["steps"],
                     "pause between steps s": figures["pause_s"], "branching think time s": figures["think_s"],
                     "torch threads per request": figures["torch_threads"]},
        "tables": {
            "teacher's click on a view to the view in each follower's session": [
                {"followers": f"{figures['wire_followers']} over the wire", "measure": "results and images received",
                 "views": f"{received['count']} of {received['expected']}", "p50 s": received["p50_s"],
                 "p95 s": received["p95_s"], "max s": received["max_s"],
                 "goal (p95 <= 3 s, no errors)": _goal(figures, "received")},
                {"followers": f"{figures['browser_followers']} browser pages", "measure": "results drawn",
                 "views": f"{shown['count']} of {shown['expected']}", "p50 s": shown["p50_s"],
                 "p95 s": shown["p95_s"], "max s": shown["max_s"], "goal (p95 <= 3 s, no errors)": _goal(figures, "shown")}],
            "the class": [{
                "errors": figures["errors"], "server's time p50 s": figures["served"]["p50_s"],
                "server's time p95 s": figures["served"]["p95_s"],
                "Reveal reached a follower p95 s": figures["revealed"]["p95_s"], "server CPU s": figures["server_cpu_s"],
                "browsers CPU s": figures["browsers_cpu_s"], "wire clients CPU s": figures["wire_cpu_s"],
                "images downloaded": figures["images_downloaded"], "server RSS peak MB": figures["server_rss_peak_mb"],
                "load 1-min peak": figures["load_1min_peak"], "wall s": figures["wall_s"]}],
            "by lesson step": [{"step": f"{s['step']} {s['title']}", "teacher s": s["teacher_s"],
                                "received p50 s": s["received"]["p50_s"], "received p95 s": s["received"]["p95_s"],
                                "received max s": s["received"]["max_s"], "shown p95 s": s["shown"]["p95_s"],
                                "server's p95 s": s["served_p95_s"], "server CPU s": s["server_cpu_s"]}
                               for s in figures["by_step"]],
            "branching Explore sessions": [{"attacks": figures["branching_requests"],
                                            "completed": figures["branching_completed"],
                                            "refused (misclassified image)": figures["branching_refused"],
                                            "busy": figures["branching_busy"],
                                            "p50 s": figures["branching_p50_s"], "p95 s": figures["branching_p95_s"]}],
        },
        "notes": [f"start-up precompute of the lesson's views: {figures['precomputed']} of {figures['views']} results "
                  f"in {figures['precompute_s']} s, before the class began",
                  "a wire follower speaks Streamlit's websocket protocol (benchmarks/wire.py): it asks for the page's "
                  "runs, reruns the follow fragment at its interval, opens the view the teacher's component names and "
                  "downloads every image, but draws nothing, as a student's browser on its own machine would cost the "
                  "server nothing to draw; the browser followers (headless Chromium at nice "
                  f"{BROWSER_NICE}, on the server's own CPUs) show the drawn page",
                  "errors by kind: " + ("; ".join(f"{count} x {kind}" for kind, count in figures["error_kinds"])
                                        or "none"),
                  f"measured {figures['date']} on {figures['cpus']} CPUs; load average before "
                  f"{figures['load_average_before']}, after {figures['load_average_after']} (latencies are wall time)"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("explore", "classroom"), default="explore")
    parser.add_argument("--sessions", type=int, default=8, help="explore: concurrent sessions")
    parser.add_argument("--clicks", type=int, default=3, help="explore: attacks per session")
    parser.add_argument("--limit", type=float, default=600.0, help="explore: total seconds for all sessions")
    parser.add_argument("--followers", type=int, default=30, help="classroom: sessions following the teacher")
    parser.add_argument("--browser-followers", type=int, default=2,
                        help="classroom: how many of the followers are browser pages (the rest are wire sessions)")
    parser.add_argument("--branching", type=int, default=8, help="classroom: sessions exploring on their own")
    parser.add_argument("--steps", type=int, default=6, help="classroom: lesson steps the teacher opens")
    parser.add_argument("--pause", type=float, default=5.0, help="classroom: seconds between the teacher's steps")
    parser.add_argument("--think", type=float, default=5.0,
                        help="classroom: seconds a branching session looks at a result before its next attack")
    args = parser.parse_args(argv)
    if args.scenario == "classroom":
        from app_support.lessons import GUIDED

        if not (args.followers >= 1 and 0 <= args.browser_followers <= args.followers and args.branching >= 0
                and 1 <= args.steps <= len(GUIDED.steps) and args.pause >= 0 and args.think >= 0):
            parser.error(f"classroom needs --followers >= 1, --browser-followers from 0 to --followers, --branching "
                         f">= 0, --steps from 1 to {len(GUIDED.steps)}, --pause >= 0 and --think >= 0")
        figures = run_classroom(args.followers, args.browser_followers, args.branching, args.steps, args.pause,
                                args.think)
        CLASSROOM_OUT.write_text(json.dumps(figures, indent=1) + "\n")
        record("load_classroom", classroom_section(figures), quick=False)
        print(classroom_markdown(figures))
    else:
        figures = run(args.sessions, args.clicks, args.limit)
        OUT.write_text(json.dumps(figures, indent=1) + "\n")
        record("load", section(figures), quick=False)
        print(markdown(figures))
    if figures["errors"]:
        raise SystemExit(f"{figures['errors']} errors: {figures['error_messages']}")


if __name__ == "__main__":
    main()
