"""Drives the app in a real browser: ``streamlit run app.py`` on a free localhost port, headless
Chromium through Playwright (``INTERP_CORE_CHROMIUM``, default /usr/bin/chromium), and helpers that
wait for a page, run the Explore attack and read what it shows. Shared by tests/test_browser.py
and benchmarks/bench_app.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("INTERP_CORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(env: dict | None = None, timeout: float = 60.0, clean_log: bool = True, started: list | None = None):
    """``streamlit run app.py`` on a free localhost port; yields the base URL; stops it after. The
    server's output goes to a log file; with ``clean_log``, leaving raises AssertionError when that
    log holds a Python traceback (server_log_tracebacks). ``started``, if given, receives the
    server's Popen (its pid, e.g. to sample memory)."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, text=True)
        if started is not None:
            started.append(proc)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"streamlit exited early:\n{log.read()}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.read().strip() == b"ok":
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("streamlit did not become healthy")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.seek(0)
        found = server_log_tracebacks(log.read())
        if clean_log and found:
            raise AssertionError(f"the server log holds {len(found)} traceback(s); the first:\n{found[0]}")


#: The one traceback a healthy server logs: a browser that goes away while its websocket is being
#: opened (Streamlit's own endpoint, seen when eight load-test sessions close at once). It is the
#: client leaving, not the app failing.
CLIENT_LEFT = "starlette.websockets.WebSocketDisconnected: WebSocket is not connected"


def server_log_tracebacks(log: str) -> list[str]:
    """Each Python traceback in a server log, from its "Traceback" line to the exception line,
    except a client leaving mid-handshake (``CLIENT_LEFT``)."""
    found = [m.group(0) for m in re.finditer(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*.*", log)]
    return [t for t in found if not t.rstrip().splitlines()[-1].startswith(CLIENT_LEFT)]


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)


#: Everything drawn: no lazy element still a skeleton, every image loaded, every plotly chart drawn.
RENDERED = """() => !document.querySelector('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]')
    && [...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)
    && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector('.main-svg'))"""
_SCRIPT_STATE = "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState"


def wait_idle(page, started: bool = False, timeout: float = 120_000) -> None:
    """Until the script run is over. Unless ``started`` (the caller saw the run's output), first give
    the click up to 1 s to start a run, so an old idle state is not mistaken for the new one."""
    if not started:
        try:
            page.wait_for_function(f"() => ({_SCRIPT_STATE})() !== 'notRunning'", timeout=1000)
        except Exception:  # noqa: BLE001 - the run was over before we looked, or there was none
            pass
    page.wait_for_function(f"() => ({_SCRIPT_STATE})() === 'notRunning'", timeout=timeout)


def fill_numbers(page, values: dict[str, str]) -> None:
    """Type each value into the number field of that label, confirm it with Enter, and wait for the rerun."""
    for label, value in values.items():
        field = page.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Enter")
        wait_idle(page)


def open_explore(page, url: str, dataset: str = "MNIST") -> None:
    page.goto(f"{url}/explore")
    page.get_by_role("button", name="Run attack").wait_for(timeout=60_000)
    if dataset != "MNIST":
        page.locator("[data-testid='stSidebar']").get_by_text(dataset, exact=True).click()
        wait_idle(page)


def choose_model(page, name: str) -> None:
    """Replace the sidebar's model selection with ``name``."""
    sidebar = page.locator("[data-testid='stSidebar']")
    clear = sidebar.locator("[data-testid='stMultiSelect']").first.get_by_role("button", name="Clear all")
    if clear.count():
        clear.click()
        wait_idle(page)
    box = sidebar.get_by_role("combobox", name="Models (side by side)")
    box.click()
    box.fill(name)
    page.get_by_role("option", name=re.compile(re.escape(name))).first.click(timeout=60_000)
    page.keyboard.press("Escape")
    wait_idle(page)


def current_image(page) -> str:
    """The chosen gallery image's caption, e.g. '#17 · true 7 · pred 7'."""
    return page.get_by_role("combobox", name="Image", exact=True).input_value().strip()


def run_attack(page, dataset: str = "MNIST") -> float:
    """Click Run attack; seconds until the results for this image are rendered: the results caption
    names the image, the numbers table is there, the script run is over, every image has loaded and
    every plotly chart has drawn."""
    image = f"{dataset} " + current_image(page).split(" · ")[0]
    start = time.perf_counter()
    page.get_by_role("button", name="Run attack").click()
    page.wait_for_function(
        """(image) => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
               .some(c => c.innerText.startsWith('Results for: ' + image + ' '))
             && document.querySelector('[data-testid="stTable"] table')""", arg=image, timeout=120_000)
    wait_idle(page, started=True)
    page.wait_for_function(
RENDERED, timeout=120_000)
    return time.perf_counter() - start


def compute_seconds(page) -> float:
    """The library time the results caption reports ("computed in X s")."""
    caption = page.locator("[data-testid='stCaptionContainer']").filter(has_text="Results for:").first.inner_text()
    return float(re.search(r"computed in ([0-9.]+) s", caption).group(1))


def metrics_table(page) -> list[dict]:
    """The discrepancy numbers table as rows of {column: text}."""
    table = page.locator("[data-testid='stTable'] table").first
    header = [th.inner_text().strip() for th in table.locator("thead th").all()]
    rows = []
    for tr in table.locator("tbody tr").all():
        cells = [c.inner_text().strip() for c in tr.locator("th, td").all()]
        rows.append(dict(zip(header[-len(cells):], cells)))
    return rows


def screenshot(page, path, width: int = 1100) -> None:
    """The whole page (Streamlit scrolls inside its main block, so the viewport is grown to fit),
    saved as a small palette PNG ``width`` pixels wide."""
    from PIL import Image

    page.wait_for_function(RENDERED, timeout=60_000)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), 6000)})
    page.wait_for_timeout(500)
    page.wait_for_function(RENDERED, timeout=60_000)
    page.wait_for_timeout(1000)  # plotly's resize animation
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    image = Image.open(path).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=64).save(path, optimize=True)


def errors(page) -> list[str]:
    shown = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
    return [e.inner_text() for e in shown.all()]


def sidebar_links(page, at_least: int = 1, timeout: float = 60_000) -> list[str]:
    """The labels of the page links in the sidebar, in order (without their icons), once at least
    ``at_least`` of them are drawn."""
    links = page.locator("[data-testid='stSidebar'] [data-testid='stPageLink'] [data-testid='stMarkdownContainer']")
    links.nth(at_least - 1).wait_for(timeout=timeout)
    return [label.inner_text().strip() for label in links.all()]
