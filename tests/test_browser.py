"""End to end in a real browser: ``streamlit run app.py`` on a free localhost port, driven by
Playwright in Debian's headless Chromium (``INTERP_CORE_CHROMIUM``, default /usr/bin/chromium),
through the driver in tools/app_driver.py.

Screenshots go to ``INTERP_CORE_SCREENSHOTS`` when set (the README's docs/screenshots), else to the
test's temporary folder.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from interp_core import paths

sys.path.insert(0, str(paths.PROJECT_ROOT))
from app_support.layout import PAGES  # noqa: E402
from tools import app_driver  # noqa: E402

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def browser():
    if not Path(app_driver.CHROMIUM).is_file():
        pytest.skip(f"needs Chromium at {app_driver.CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = app_driver.launch_browser(pw)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with app_driver.app_server(env={"INTERP_CORE_RUNS_DIR": str(runs)}) as url:
        yield url


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("INTERP_CORE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_explore_numbers_match_the_library(browser, app_url, shots):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    app_driver.open_explore(page, app_url)
    image = app_driver.current_image(page)
    app_driver.run_attack(page)
    assert not app_driver.errors(page)
    shown = app_driver.metrics_table(page)
    app_driver.screenshot(page, shots / "explore.png")

    # the same inputs through the library: the page's defaults (first model, first attack, its defaults)
    from interp_core.data import load_dataset
    from interp_core.services.explore import explore
    from interp_core.interpret import LABELS
    from interp_core.models import load_model
    from app_support.attack_controls import default_attack
    from interp_core.attacks import build_attack

    index = int(image.split(" · ")[0].lstrip("#"))
    data = load_dataset("mnist", "demo")
    model = load_model("mnist-smallgap-normal-paper")[0]
    name, params = default_attack("mnist")
    expected = explore({"m": model}, data.images[index:index + 1], data.labels[index:index + 1],
                       build_attack(name, **params), ["cam", "gradcampp", "saliency", "ig"],
                       class_names=data.class_names, trajectory_explainer=None)
    rows = {row["explainer"]: row for row in shown}
    assert set(rows) == {LABELS[e] for e in expected.models[0].maps}
    for explainer, maps in expected.models[0].maps.items():
        for metric, value in maps.metrics.items():
            got = float(rows[LABELS[explainer]][metric])
            assert got == pytest.approx(float(value[0]), rel=1e-4, abs=1e-6), (explainer, metric)


def test_train_start_progress_stop(browser, app_url, shots):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{app_url}/train")
    page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
    page.get_by_text("demo sample (300, offline)").click()  # trains offline, without the full data
    app_driver.wait_idle(page)
    page.get_by_label("Epochs").fill("20")  # long enough to be stopped
    page.get_by_label("Epochs").press("Enter")
    app_driver.wait_idle(page)
    page.get_by_role("button", name="Start training").click()
    page.locator("[data-testid='stProgress']").first.wait_for(timeout=120_000)  # live progress of the run
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=60_000)
    app_driver.screenshot(page, shots / "train.png")
    page.get_by_role("button", name="Stop").first.click()
    page.get_by_text(re.compile(r"(stopped|finished) after \d+ steps")).first.wait_for(timeout=120_000)
    assert not app_driver.errors(page)


#: The button that fills a page with results; pressed (defaults: tens of seconds) only when
#: screenshots are being taken for the README.
RUN_BUTTONS = {"robustness": "Evaluate", "isa": "Run ISA"}


@pytest.mark.parametrize("page_name", ["home", "robustness", "isa", "about"])
def test_every_page_renders(browser, app_url, shots, page_name):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(app_url if page_name == "home" else f"{app_url}/{page_name}")
    page.locator("h1").first.wait_for(timeout=60_000)
    app_driver.wait_idle(page)
    if page_name in RUN_BUTTONS and "INTERP_CORE_SCREENSHOTS" in os.environ:
        page.get_by_role("button", name=RUN_BUTTONS[page_name]).click()
        app_driver.wait_idle(page, timeout=600_000)
    assert not app_driver.errors(page)
    app_driver.screenshot(page, shots / f"{page_name}.png")


@pytest.mark.parametrize("script, title", [(script, title) for script, title, _, _ in PAGES])
def test_every_deep_link_runs_the_shared_setup(browser, app_url, script, title):
    """A fresh browser opening a page's own URL (/, /explore, ...) gets the set-up every page
    shares: the page title, and the sidebar's links to every page with their titles."""
    path = "" if script == "app.py" else Path(script).stem
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{app_url}/{path}")
    page.locator("h1").first.wait_for(timeout=60_000)
    app_driver.wait_idle(page)
    assert page.title() == f"{title} · interp_core lab"
    assert app_driver.sidebar_links(page, at_least=len(PAGES)) == [t for _, t, _, _ in PAGES]
    assert not app_driver.errors(page)
    page.context.close()
