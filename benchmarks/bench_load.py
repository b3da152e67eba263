"""Many users against one real server on localhost, in two scenarios; each reports its errors (must
be 0), latencies (p50/p95) and the server's peak memory (resident set of the server's process
tree, sampled from /proc), with the machine's load average.

``explore`` (the default): 8 concurrent browser sessions, each driving Explore (MNIST and CIFAR-10
sessions, four attacks) for a bounded number of fresh attacks within a total time limit; latency
from the click to the results. Every click asks for a new image first (the Random button), so
results rarely come from the cache. The start-up precompute of the lessons' views is off here.

``classroom``: a class. The server starts with its start-up precompute of the lesson's views
(app_support/precompute.py) and the class begins once it is done. A teacher session opens a class on the
Lesson page and steps through the guided lesson: Next, Reveal, "Open this view", then a pause. The
followers joined by the class's ``?follow=CODE`` link. Per follower and step, from the teacher's
click on "Open this view": until the view's results are drawn in the follower's page ("shown");
until the server's last message of that view's run reaches the follower's browser ("delivered":
the script-finished message after the results caption, read from the page's websocket, the
drawing left out); and the server's own time for that run (from the page's request of it to that
message). Every browser runs on the server's own 2 cores here, so "shown" includes 30-odd
headless Chromium pages drawing on them, where in a class the students' browsers draw on their
own machines; the browsers run at the lowest priority (nice ``BROWSER_NICE``), so the server is
served first and the pages draw with what is left. Each step also reports the CPU seconds the
server and the browsers used. The branching sessions meanwhile run their own Explore attacks on
fresh images, as in ``explore``.

One headless Chromium, one browser context per session (Playwright's async API).

``python -m benchmarks.bench_load [--sessions 8] [--clicks 3] [--limit 600]`` writes
``benchmarks/load.json``; ``python -m benchmarks.bench_load --scenario classroom [--followers 30]
[--branching 8] [--steps 6] [--pause 5]`` writes ``benchmarks/load_classroom.json``. Each writes its
section of benchmarks/RESULTS.md, and prints it.
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


async def session(browser, url: str, index: int, clicks: int, deadline: float, report: dict,
                  stop: asyncio.Event | None = None) -> None:
    """One user: open Explore, choose a dataset and an attack, then up to ``clicks`` fresh attacks
    before ``deadline`` (time.monotonic()) or until ``stop`` is set; latencies and errors go into
    ``report``."""
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
            if stop is not None and stop.is_set():
                break
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
    await teacher.get_by_text("Class", exact=True).click()
    await teacher.get_by_role("button", name="Teach").click()
    code = teacher.get_by_text(re.compile(r"^Class code [A-Z2-9]{4}$"))
    await code.wait_for(timeout=120_000)
    return (await code.inner_text()).split()[-1]


def _listen(page) -> list[tuple[float, str, str]]:
    """The messages between ``page`` and the server from now on, as they pass: (time.perf_counter(),
    "request" (the page asks for a run of its script) | "caption" with its text | "finished" with
    the run's end status)."""
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
        if kind == "delta" and msg.delta.new_element.WhichOneof("type") == "markdown":
            events.append((time.perf_counter(), "caption", msg.delta.new_element.markdown.body))
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
    sent = next((t for t, kind, text in events if t >= since and kind == "caption"
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


async def _teach(browser, url: str, server_pid: int, followers: int, branching: int, steps, pause: float,
                 timeout: float) -> dict:
    report = {"by_step": [], "errors": [], "branching": {"requests": 0, "not_run": 0, "latency": [], "by_kind": {},
                                                        "errors": []}}
    context = await _new_context(browser)
    teacher = await context.new_page()
    await teacher.goto(f"{url}/lesson")
    code = await _open_class(teacher)
    students = await asyncio.gather(*(_follower(browser, url, code) for _ in range(followers)))
    stop = asyncio.Event()
    branches = [asyncio.create_task(session(browser, url, i, 10**6, time.monotonic() + 24 * 3600, report["branching"],
                                            stop)) for i in range(branching)]
    sidebar = teacher.locator("[data-testid='stSidebar']")
    for i, step in enumerate(steps):
        if i:  # back to the lesson (it opens at the step it showed), then the next step
            await sidebar.locator("[data-testid='stPageLink']").filter(has_text="Lesson").click()
            await teacher.get_by_role("heading", name=steps[i - 1].title).wait_for(timeout=timeout * 1000)
            await _wait_idle(teacher, timeout=timeout * 1000)
            await teacher.get_by_role("button", name="Next").click()
        await teacher.get_by_role("heading", name=step.title).wait_for(timeout=timeout * 1000)
        await _wait_idle(teacher, timeout=timeout * 1000)  # a click during the step's run could be lost
        await teacher.get_by_text("Reveal", exact=True).click()
        await _wait_idle(teacher, timeout=timeout * 1000)
        view = teacher.get_by_text("Open this view (the attack runs)")
        await view.wait_for(timeout=timeout * 1000)
        caption = view_caption(step)
        browsers = _browser_pids()
        cpu = _cpu_seconds([server_pid]), _cpu_seconds(browsers)
        started = time.perf_counter()
        await view.click()
        shown = await asyncio.gather(*(_shown(p, caption, started, timeout) for p in [teacher, *students]),
                                     return_exceptions=True)
        cpu = _cpu_seconds([server_pid]) - cpu[0], _cpu_seconds(browsers) - cpu[1]
        latency = [s for s in shown[1:] if isinstance(s, float)]
        runs = [d for p in students if (d := _delivered(p.events, caption, started)) is not None]
        delivered, served = [d for d, _ in runs], [s for _, s in runs]
        for who, result in zip(["teacher"] + [f"follower {j}" for j in range(followers)], shown):
            if not isinstance(result, float):
                report["errors"].append(f"step {i + 1}, {who}: {type(result).__name__}: {str(result).splitlines()[0]}")
        for j, page in enumerate([teacher, *students]):
            alerts = [await e.inner_text() for e in await page.locator(ERRORS).all()]
            report["errors"].extend(f"step {i + 1}, {'teacher' if j == 0 else f'follower {j - 1}'}: {a}"
                                    for a in alerts)
        report["by_step"].append({"step": i + 1, "title": step.title, "page": step.page,
                                  "teacher_s": shown[0] if isinstance(shown[0], float) else None,
                                  "latency": latency, "delivered": delivered, "served": served,
                                  "server_cpu_s": cpu[0],
                                  "browsers_cpu_s": cpu[1]})
        await asyncio.sleep(pause)
    stop.set()
    await asyncio.gather(*branches)
    report["errors"] += report["branching"]["errors"]
    await context.close()
    for page in students:
        await page.context.close()
    return report


async def _drive_classroom(url: str, followers: int, branching: int, steps, pause: float, timeout: float,
                           sampler: MemorySampler) -> tuple[dict, dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        for pid in _browser_pids():  # the pages it opens later start from these, with their priority
            os.setpriority(os.PRIO_PROCESS, pid, BROWSER_NICE)
        precompute = await _wait_precomputed(browser, url)
        sampler.start()  # the class's figures, from here on
        report = await _teach(browser, url, sampler.pid, followers, branching, steps, pause, timeout)
        await browser.close()
    return precompute, report


def run_classroom(followers: int = 30, branching: int = 8, steps: int = 6, pause: float = 5.0,
                  timeout: float = 120.0) -> dict:
    """Start a server (precompute on), wait for its precompute, then the class: a teacher through the
    first ``steps`` steps of the guided lesson with ``pause`` seconds after each, ``followers``
    following sessions and ``branching`` Explore sessions of their own; ``timeout`` seconds for a
    view to appear. The figures."""
    from app_support.lessons import GUIDED

    chosen = GUIDED.steps[:steps]
    load_before = os.getloadavg()
    procs: list = []
    with app_server(env={PRECOMPUTE_ENV: "1"}, started=procs, timeout=120.0) as url:
        sampler = MemorySampler(procs[0].pid)
        started = time.perf_counter()
        precompute, report = asyncio.run(_drive_classroom(url, followers, branching, chosen, pause, timeout, sampler))
        wall = time.perf_counter() - started
        peak = sampler.stop()
    latency = [s for step in report["by_step"] for s in step["latency"]]
    delivered = [s for step in report["by_step"] for s in step["delivered"]]
    served = [s for step in report["by_step"] for s in step["served"]]
    branch = report["branching"]["latency"]

    def rounded(values: list[float], q: float) -> float | None:
        return round(_percentile(values, q), 2) if values else None

    return {
        "scenario": "classroom", "followers": followers, "branching": branching, "steps": len(chosen),
        "pause_s": pause, "view_timeout_s": timeout, **precompute, "wall_s": round(wall, 1),
        "views_expected": followers * len(chosen), "views_shown": len(latency),
        "view_latency_p50_s": rounded(latency, 0.5), "view_latency_p95_s": rounded(latency, 0.95),
        "view_latency_max_s": round(max(latency), 2) if latency else None,
        "views_delivered": len(delivered), "delivered_p50_s": rounded(delivered, 0.5),
        "delivered_p95_s": rounded(delivered, 0.95), "delivered_max_s": round(max(delivered), 2) if delivered else None,
        "served_p50_s": rounded(served, 0.5), "served_p95_s": rounded(served, 0.95),
        "served_max_s": round(max(served), 2) if served else None,
        "server_cpu_s": round(sum(s["server_cpu_s"] for s in report["by_step"]), 1),
        "browsers_cpu_s": round(sum(s["browsers_cpu_s"] for s in report["by_step"]), 1),
        "by_step": [{"step": s["step"], "title": s["title"], "page": s["page"],
                     "teacher_s": None if s["teacher_s"] is None else round(s["teacher_s"], 2),
                     "p50_s": rounded(s["latency"], 0.5), "p95_s": rounded(s["latency"], 0.95),
                     "max_s": round(max(s["latency"]), 2) if s["latency"] else None,
                     "delivered_p95_s": rounded(s["delivered"], 0.95), "server_cpu_s": round(s["server_cpu_s"], 1),
                     "browsers_cpu_s": round(s["browsers_cpu_s"], 1)} for s in report["by_step"]],
        "branching_requests": report["branching"]["requests"], "branching_completed": len(branch),
        "branching_p50_s": rounded(branch, 0.5), "branching_p95_s": rounded(branch, 0.95),
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


def _goal(figures: dict, p95: str, count: str) -> str:
    """Whether figure ``p95`` (seconds) met the goal: p95 <= 3 s for every view, and no errors."""
    met = (figures["errors"] == 0 and figures[p95] is not None and figures[p95] <= 3.0
           and figures[count] == figures["views_expected"])
    return "met" if met else "NOT met"


def classroom_markdown(figures: dict) -> str:
    """The classroom figures as printed text (their RESULTS.md section is classroom_section)."""
    steps = "\n".join(f"| {s['step']} {s['title']} | {s['teacher_s']} | {s['p50_s']} | {s['p95_s']} | {s['max_s']} | "
                      f"{s['delivered_p95_s']} | {s['server_cpu_s']} | {s['browsers_cpu_s']} |"
                      for s in figures["by_step"])
    return (
        f"## Classroom (benchmarks/bench_load.py --scenario classroom)\n\n"
        f"{figures['followers']} followers and {figures['branching']} branching sessions; the teacher steps through "
        f"{figures['steps']} lesson views, {figures['pause_s']:g} s apart. Start-up precompute: "
        f"{figures['precomputed']} of {figures['views']} results in {figures['precompute_s']} s.\n\n"
        f"| figure | value |\n|---|---|\n"
        f"| views shown to followers | {figures['views_shown']} of {figures['views_expected']} |\n"
        f"| teacher's click to a follower's results shown, p50 / p95 / max | {figures['view_latency_p50_s']} s / "
        f"{figures['view_latency_p95_s']} s / {figures['view_latency_max_s']} s (goal p95 <= 3 s, no errors: "
        f"{_goal(figures, 'view_latency_p95_s', 'views_shown')}) |\n"
        f"| ... to the view's last message delivered, p50 / p95 / max | {figures['delivered_p50_s']} s / "
        f"{figures['delivered_p95_s']} s / {figures['delivered_max_s']} s, {figures['views_delivered']} views (goal: "
        f"{_goal(figures, 'delivered_p95_s', 'views_delivered')}) |\n"
        f"| a follower's request of the view to its last message (the server's time), p50 / p95 / max | "
        f"{figures['served_p50_s']} s / {figures['served_p95_s']} s / {figures['served_max_s']} s |\n"
        f"| CPU seconds of the views: server / browsers | {figures['server_cpu_s']} / {figures['browsers_cpu_s']} |\n"
        f"| errors | {figures['errors']} |\n"
        f"| branching attacks completed, p50 / p95 | {figures['branching_completed']} of "
        f"{figures['branching_requests']}, {figures['branching_p50_s']} s / {figures['branching_p95_s']} s |\n"
        f"| server memory peak (RSS of its process tree) | {figures['server_rss_peak_mb']} MB |\n"
        f"| load average before / 1-min peak / after | {figures['load_average_before']} / "
        f"{figures['load_1min_peak']} / {figures['load_average_after']} ({figures['cpus']} CPUs) |\n"
        f"| wall time | {figures['wall_s']} s |\n\n"
        f"| step | teacher s | shown p50 s | p95 s | max s | delivered p95 s | server CPU s | browsers CPU s |\n"
        f"|---|---|---|---|---|---|---|---|\n{steps}\n")


def classroom_section(figures: dict) -> dict:
    """The classroom figures as a section of benchmarks/RESULTS.md (see benchmarks/results.py)."""
    return {
        "title": "Classroom: a teacher, followers and branching sessions (benchmarks/bench_load.py --scenario "
                 "classroom)",
        "settings": {"followers": figures["followers"], "branching sessions": figures["branching"],
                     "lesson steps": figures["steps"], "pause between steps s": figures["pause_s"],
                     "torch threads per request": figures["torch_threads"]},
        "tables": {
            "teacher's click on a view to the view's results in each follower's page": [{
                "views shown": f"{figures['views_shown']} of {figures['views_expected']}",
                "p50 s": figures["view_latency_p50_s"], "p95 s": figures["view_latency_p95_s"],
                "max s": figures["view_latency_max_s"],
                "goal (p95 <= 3 s, no errors)": _goal(figures, "view_latency_p95_s", "views_shown"),
                "errors": figures["errors"],
                "server RSS peak MB": figures["server_rss_peak_mb"], "load 1-min peak": figures["load_1min_peak"],
                "wall s": figures["wall_s"]}],
            "teacher's click to the view's last message delivered to each follower's browser": [{
                "views delivered": f"{figures['views_delivered']} of {figures['views_expected']}",
                "p50 s": figures["delivered_p50_s"], "p95 s": figures["delivered_p95_s"],
                "max s": figures["delivered_max_s"],
                "goal (p95 <= 3 s, no errors)": _goal(figures, "delivered_p95_s", "views_delivered"),
                "server's time p50 s": figures["served_p50_s"], "server's time p95 s": figures["served_p95_s"],
                "server CPU s": figures["server_cpu_s"], "browsers CPU s": figures["browsers_cpu_s"]}],
            "by lesson step": [{"step": f"{s['step']} {s['title']}", "teacher s": s["teacher_s"],
                                "shown p50 s": s["p50_s"], "shown p95 s": s["p95_s"], "shown max s": s["max_s"],
                                "delivered p95 s": s["delivered_p95_s"], "server CPU s": s["server_cpu_s"],
                                "browsers CPU s": s["browsers_cpu_s"]}
                               for s in figures["by_step"]],
            "branching Explore sessions": [{"attacks": figures["branching_requests"],
                                            "completed": figures["branching_completed"],
                                            "p50 s": figures["branching_p50_s"], "p95 s": figures["branching_p95_s"]}],
        },
        "notes": [f"start-up precompute of the lesson's views: {figures['precomputed']} of {figures['views']} results "
                  f"in {figures['precompute_s']} s, before the class began",
                  "every browser page runs on the server's own CPUs here (headless Chromium, at nice "
                  f"{BROWSER_NICE}): 'shown' includes their drawing, 'delivered' ends when the view's last message "
                  "reaches the page",
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
    parser.add_argument("--branching", type=int, default=8, help="classroom: sessions exploring on their own")
    parser.add_argument("--steps", type=int, default=6, help="classroom: lesson steps the teacher opens")
    parser.add_argument("--pause", type=float, default=5.0, help="classroom: seconds between the teacher's steps")
    args = parser.parse_args(argv)
    if args.scenario == "classroom":
        from app_support.lessons import GUIDED

        if not (args.followers >= 1 and args.branching >= 0 and 1 <= args.steps <= len(GUIDED.steps)
                and args.pause >= 0):
            parser.error(f"classroom needs --followers >= 1, --branching >= 0, --steps from 1 to "
                         f"{len(GUIDED.steps)} and --pause >= 0")
        figures = run_classroom(args.followers, args.branching, args.steps, args.pause)
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
