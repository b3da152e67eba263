"""App latency, measured by driving the real page in headless Chromium (issue 5's targets):

- Explore, MNIST smallgap (normal), PGD-40, four explainers (CAM, Grad-CAM++, saliency, IG) on clean
  and adversarial images: median click-to-rendered time, target <= 1 s on the 2-core machine;
- the same with CIFAR-10 wresnet: target <= 3 s;
- two sessions attacking at once: no errors, and each sees only its own image.

Every timed click asks for a new image (the Random button), so no result comes from the cache.
``python -m benchmarks.bench_app [--repeats N]``. The driver (server, browser, page helpers) is also
used by tests/test_browser.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("INTERP_CORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXPLAINERS = ("CAM", "Grad-CAM++", "Saliency", "Integrated Gradients")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(env: dict | None = None, timeout: float = 60.0):
    """``streamlit run app.py`` on a free localhost port; yields the base URL; stops it after."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{proc.stdout.read()}")
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


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)


def wait_idle(page, timeout: float = 120_000) -> None:
    """Until the script run finished (Streamlit's running indicator is gone)."""
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout)


def open_explore(page, url: str, dataset: str = "MNIST") -> None:
    page.goto(f"{url}/explore")
    page.get_by_role("button", name="Run attack").wait_for(timeout=60_000)
    if dataset != "MNIST":
        page.locator("[data-testid='stSidebar']").get_by_text(dataset, exact=True).click()
        wait_idle(page)


def choose_model(page, name: str) -> None:
    """Replace the sidebar's model selection with ``name``."""
    sidebar = page.locator("[data-testid='stSidebar']")
    box = sidebar.locator("[data-testid='stMultiSelect']").first
    clear = box.locator("[data-baseweb='select'] [role='button'][aria-label*='Clear all' i]")
    if clear.count():
        clear.first.click()
        wait_idle(page)
    box.locator("input").first.click()
    page.get_by_role("option", name=re.compile(re.escape(name))).first.click()
    page.keyboard.press("Escape")
    wait_idle(page)


def current_image(page) -> str:
    """The chosen gallery image's caption, e.g. '#17 · true 7 · pred 7'."""
    box = page.locator("[data-testid='stSelectbox']").filter(has_text="Image").first
    return box.locator("[data-baseweb='select']").inner_text().strip()


def run_attack(page, expect_charts: int) -> float:
    """Click Run attack; seconds until the results for this image are rendered (numbers table and
    ``expect_charts`` plotly figures drawn)."""
    image = current_image(page).split(" · ")[0]
    start = time.perf_counter()
    page.get_by_role("button", name="Run attack").click()
    page.wait_for_function(
        """([image, charts]) => {
            const caps = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')];
            const ok = caps.some(c => c.innerText.startsWith('Results for: ' + image + ' '));
            return ok && document.querySelector('[data-testid="stTable"] table')
                && document.querySelectorAll('.js-plotly-plot .main-svg').length >= charts;
        }""", arg=[image, expect_charts], timeout=120_000)
    wait_idle(page)
    return time.perf_counter() - start


def metrics_table(page) -> list[dict]:
    """The discrepancy numbers table as rows of {column: text}."""
    table = page.locator("[data-testid='stTable'] table").first
    header = [th.inner_text().strip() for th in table.locator("thead th").all()]
    rows = []
    for tr in table.locator("tbody tr").all():
        cells = [c.inner_text().strip() for c in tr.locator("th, td").all()]
        rows.append(dict(zip(header[-len(cells):], cells)))
    return rows


def errors(page) -> list[str]:
    return [e.inner_text() for e in page.locator("[data-testid='stException'], [data-testid='stAlertContentError']").all()]


def explore_latency(page, url: str, dataset: str, model: str, repeats: int) -> list[float]:
    open_explore(page, url, dataset)
    choose_model(page, model)
    charts = len(EXPLAINERS) + 1  # the maps figures + at least the top-k chart
    times = []
    for _ in range(repeats + 1):  # the first click also loads the model: not counted
        previous = current_image(page)
        for _ in range(5):  # a new image, so the result is not cached
            page.get_by_role("button", name="🎲 Random").click()
            wait_idle(page)
            if current_image(page) != previous:
                break
        times.append(run_attack(page, charts))
        if errors(page):
            raise RuntimeError(f"the page shows errors: {errors(page)}")
    return times[1:]


def two_sessions(browser, url: str) -> dict:
    """Two sessions click Run at the same time on different images; each must see its own."""
    pages = [browser.new_context(viewport={"width": 1400, "height": 1000}).new_page() for _ in range(2)]
    for page in pages:
        open_explore(page, url)
    pages[1].get_by_role("button", name="🎲 Random").click()
    wait_idle(pages[1])
    images = [current_image(p).split(" · ")[0] for p in pages]
    start = time.perf_counter()
    for page in pages:
        page.get_by_role("button", name="Run attack").click()
    seen = []
    for page, image in zip(pages, images):
        page.wait_for_function(
            "(image) => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
            ".some(c => c.innerText.startsWith('Results for: ' + image + ' '))", arg=image, timeout=120_000)
        wait_idle(page)
        seen.append([c.inner_text() for c in page.locator("[data-testid='stCaptionContainer']").all()
                     if c.inner_text().startswith("Results for:")])
    own = all(len(s) == 1 and s[0].startswith(f"Results for: {im} ") for s, im in zip(seen, images))
    return {"images": images, "both_seconds": time.perf_counter() - start, "own_state_only": own,
            "errors": [e for p in pages for e in errors(p)]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with app_server() as url, sync_playwright() as pw:
        browser = launch_browser(pw)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        for dataset, model, target in (("MNIST", "mnist-smallgap-normal-paper", 1.0),
                                       ("CIFAR-10", "cifar10-wresnet-normal-paper", 3.0)):
            times = explore_latency(page, url, dataset, model, args.repeats)
            median = statistics.median(times)
            print(f"explore {dataset:<8} {model:<30} PGD-40, {len(EXPLAINERS)} explainers: median {median:.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)}); target <= {target:.0f} s: "
                  f"{'met' if median <= target else 'MISSED'}")
        both = two_sessions(browser, url)
        print(f"two sessions at once: images {both['images']}, both done in {both['both_seconds']:.2f} s, "
              f"own state only: {both['own_state_only']}, errors: {both['errors'] or 'none'}")
        browser.close()


if __name__ == "__main__":
    main()
