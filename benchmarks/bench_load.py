"""Many users: 8 concurrent browser sessions against one real server on localhost, each driving
Explore (MNIST and CIFAR-10 sessions, four attacks) for a bounded number of fresh attacks within a
total time limit. Reports the attack requests, errors (must be 0), click-to-results latency
(p50/p95) and the server's peak memory (resident set of the server's process tree, sampled from
/proc), with the machine's load average.

One headless Chromium, one browser context per session (Playwright's async API). Every click asks
for a new image first (the Random button), so results rarely come from the cache.

``python -m benchmarks.bench_load [--sessions 8] [--clicks 3] [--limit 600]``; writes
``benchmarks/load.json`` (the raw figures) and its section of benchmarks/RESULTS.md, and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

from benchmarks.results import record
from tools.app_driver import _SCRIPT_STATE, CHROMIUM, CHROMIUM_FLAGS, RENDERED, app_server

OUT = Path(__file__).resolve().parent / "load.json"
DATASETS = ("MNIST", "CIFAR-10")
ATTACK_MIX = ("pgd", "fgsm", "pgd-margin", "paper-pgd")
VIEWPORT = {"width": 1400, "height": 1000}
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
    """Samples tree_rss(pid) every ``every`` seconds until stopped; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.samples = pid, every, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
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


async def session(browser, url: str, index: int, clicks: int, deadline: float, report: dict) -> None:
    """One user: open Explore, choose a dataset and an attack, then up to ``clicks`` fresh attacks
    before ``deadline`` (time.monotonic()); latencies and errors go into ``report``."""
    from interp_core.attacks import ATTACKS

    dataset, attack = DATASETS[index % 2], ATTACK_MIX[(index // 2) % len(ATTACK_MIX)]
    context = await browser.new_context(viewport=VIEWPORT)
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
    with app_server(started=procs) as url:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--clicks", type=int, default=3, help="attacks per session")
    parser.add_argument("--limit", type=float, default=600.0, help="total seconds for all sessions")
    args = parser.parse_args(argv)
    figures = run(args.sessions, args.clicks, args.limit)
    OUT.write_text(json.dumps(figures, indent=1) + "\n")
    record("load", section(figures), quick=False)
    print(markdown(figures))
    if figures["errors"]:
        raise SystemExit(f"{figures['errors']} errors: {figures['error_messages']}")


if __name__ == "__main__":
    main()
