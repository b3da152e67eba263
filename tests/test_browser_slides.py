"""Slides and the draw-a-digit canvas in a real browser (one server for the module, whose log must
hold no traceback): Explore's "HTML slides" and the Lesson page's slides download as valid
self-contained files that print one slide per page, and a digit drawn with the mouse goes through
Explore like an uploaded image."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from interp_core import paths
from interp_core.services.explore import METRIC_DEFINITIONS

sys.path.insert(0, str(paths.PROJECT_ROOT))
from tests.test_slides import Parsed, check_self_contained  # noqa: E402
from tools import app_driver  # noqa: E402

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def app_url():
    with app_driver.app_server() as url:
        yield url


def download(page, button: str, tmp_path: Path) -> str:
    """Click the download button labelled ``button``; the downloaded file's text."""
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=button).click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return target.read_text(encoding="utf-8")


def printed_pages(browser, text: str, tmp_path: Path) -> int:
    """How many pages the slides file prints to (Chromium's PDF of it)."""
    page = browser.new_page()
    (tmp_path / "slides.html").write_text(text, encoding="utf-8")
    page.goto((tmp_path / "slides.html").as_uri())
    pdf = page.pdf(landscape=True, format="A4")
    page.close()
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf))


def test_explore_exports_its_view_as_slides(browser, app_url, tmp_path):
    page = browser.new_context(viewport=VIEWPORT, accept_downloads=True).new_page()
    app_driver.open_explore(page, app_url)
    app_driver.run_attack(page)
    shown = app_driver.metrics_table(page)
    text = download(page, "HTML slides", tmp_path)
    parsed = Parsed(text)
    models = len({row["model"] for row in shown})
    assert parsed.sections == ["title", "images", *["maps"] * models, "numbers"]
    check_self_contained(text, parsed)
    assert parsed.links and parsed.links[0].startswith(app_url + "/explore?") and "run=1" in parsed.links[0]
    header = ["model", "explainer", *METRIC_DEFINITIONS]
    rows = parsed.rows[parsed.rows.index(header) + 1:]
    for row, page_row in zip(rows, shown):  # the page shows 6 significant figures, the slides 4
        assert row[:2] == [page_row["model"], page_row["explainer"]]
        for cell, key in zip(row[2:], METRIC_DEFINITIONS):
            assert float(cell) == pytest.approx(float(page_row[key]), rel=1e-3, abs=1e-9)
    assert printed_pages(browser, text, tmp_path) == len(parsed.sections)
    assert not app_driver.errors(page)


def test_the_lesson_page_downloads_the_slides_of_a_lesson(browser, app_url, tmp_path):
    lesson = {"title": "One flip", "steps": [{
        "title": "FGSM on a 1", "page": "pages/explore.py",
        "params": {"dataset": "mnist", "image": "8", "models": "mnist-smallgap-normal-paper", "attack": "fgsm",
                   "eps": "0.3", "explainers": "cam,saliency", "run": "1"},
        "explain": "One signed step of 0.3.", "predict": "Will the 1 survive?", "answer": "It flips."}]}
    page = browser.new_context(viewport=VIEWPORT, accept_downloads=True).new_page()
    page.goto(f"{app_url}/lesson")
    page.get_by_text("Save, load or build a lesson").click()
    box = page.locator("[data-testid='stFileUploader']").filter(has_text="Load a lesson")
    box.locator("input[type=file]").set_input_files(
        files=[{"name": "lesson.json", "mimeType": "application/json", "buffer": json.dumps(lesson).encode()}])
    page.get_by_text("FGSM on a 1").first.wait_for(timeout=60_000)
    app_driver.wait_idle(page)
    page.get_by_text("Slides of this lesson").click()
    page.get_by_role("button", name="Make the slides").click()
    page.get_by_role("button", name="Download the slides (HTML)").wait_for(timeout=180_000)
    app_driver.wait_idle(page)
    page.screenshot(path=str(tmp_path / "lesson.png"))
    text = download(page, "Download the slides (HTML)", tmp_path)
    parsed = Parsed(text)
    assert parsed.sections == ["title", "question", "images", "maps", "numbers"]
    check_self_contained(text, parsed)
    assert "Will the 1 survive?" in text and "Measured: It flips." in text
    assert printed_pages(browser, text, tmp_path) == len(parsed.sections)
    assert not app_driver.errors(page)


def test_a_digit_drawn_with_the_mouse_is_attacked_like_an_upload(browser, app_url, tmp_path):
    from urllib.parse import urlparse

    page = browser.new_context(viewport=VIEWPORT).new_page()
    outside = []  # the canvas works offline: no request leaves the machine
    page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).scheme not in ("data", "blob") and
            urlparse(r.url).hostname not in ("127.0.0.1", "localhost") else None)
    app_driver.open_explore(page, app_url)
    page.get_by_text("draw a digit", exact=True).click()
    canvas = page.locator("canvas[aria-label^='drawing area']")
    canvas.wait_for(timeout=60_000)
    app_driver.wait_idle(page)
    assert page.get_by_text("Draw a digit on the black square").count() == 1
    box = canvas.bounding_box()
    # a "1": one stroke down the middle of the square
    page.mouse.move(box["x"] + box["width"] * 0.52, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.48, box["y"] + box["height"] * 0.85, steps=15)
    page.mouse.up()
    page.get_by_text("centred by its centre of mass").wait_for(timeout=60_000)
    app_driver.wait_idle(page)
    page.get_by_role("button", name="Run attack").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
               .some(c => c.innerText.startsWith('Results for: MNIST drawn digit'))
             && document.querySelector('[data-testid="stTable"] table')""", timeout=180_000)
    app_driver.wait_idle(page, started=True)
    text = page.locator("[data-testid='stApp']").inner_text()
    assert re.search(r"top-5 clean: (\S+)", text).group(1) == "1"  # a stroke down the middle reads as a 1
    assert app_driver.metrics_table(page)
    app_driver.screenshot(page, tmp_path / "drawn.png")
    assert not app_driver.errors(page) and not page.locator("[data-testid='stException']").count()
    page.get_by_role("button", name="Clear", exact=True).click()
    page.get_by_text("Draw a digit on the black square").wait_for(timeout=60_000)
    app_driver.wait_idle(page)
    assert page.locator("[data-testid='stCaptionContainer']").filter(has_text="Results for:").count() == 0
    assert outside == []
