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
    from interp_core.services.explore import ExploreAttack, ExploreImages, explore
    from interp_core.interpret import LABELS
    from interp_core.models import load_model
    from app_support.attack_controls import default_attack

    index = int(image.split(" · ")[0].lstrip("#"))
    data = load_dataset("mnist", "demo")
    model = load_model("mnist-smallgap-normal-paper")[0]
    name, params = default_attack("mnist")
    expected = explore({"m": model}, ExploreImages(data.images[index:index + 1], data.labels[index:index + 1],
                                                   data.class_names),
                       ExploreAttack.registered(name, params), ["cam", "gradcampp", "saliency", "ig"],
                       trajectory_explainer=None)
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
    page.get_by_text("demo sample (offline)").click()  # trains offline, without the full data
    app_driver.wait_idle(page)
    # 20 epochs of 100 images one at a time with a 20-step inner attack: 2,000 slow steps, so the run is
    # still training when Stop is clicked (the classroom defaults, in batches of 20, ended in 4.5 s: before
    # a loaded CI machine had drawn the progress)
    app_driver.fill_numbers(page, {"Epochs": "20", "Batch size": "1", "Inner attack steps": "20"})
    page.get_by_role("button", name="Start training").click()
    page.locator("[data-testid='stProgress']").first.wait_for(timeout=120_000)  # live progress of the run
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Stop").first.click()
    page.get_by_text(re.compile(r"(stopped|finished) after \d+ steps")).first.wait_for(timeout=120_000)
    assert page.get_by_text(re.compile(r"stopped after \d+ steps")).count() >= 1, "training ended before Stop"
    page.get_by_role("button", name="Resume").wait_for(timeout=30_000)  # a stopped run can be resumed
    assert not app_driver.errors(page)


def test_train_run_ends_with_its_evaluation(browser, app_url, shots):
    """A short offline run: the page follows it through training and the automatic evaluation, then
    shows the evaluation table and the accuracy and tau curves."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{app_url}/train")
    page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
    page.get_by_text("demo sample (offline)").click()
    app_driver.wait_idle(page)
    app_driver.fill_numbers(page, {"Epochs": "2", "Evaluation images": "10"})
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"evaluation: (loading|robust accuracy|AAI)")).first.wait_for(timeout=300_000)
    page.get_by_role("heading", name="Evaluation").wait_for(timeout=600_000)
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=30_000)
    assert page.locator("[data-testid='stPlotlyChart'] .main-svg").count() >= 5  # training + evaluation curves
    assert page.get_by_role("button", name=re.compile("Open .* in Explore")).count() == 1
    app_driver.screenshot(page, shots / "train.png")
    assert not app_driver.errors(page)
    page.get_by_role("button", name=re.compile("Open .* in Explore")).click()  # opens the run, attacked
    wait_results(page)
    assert "run=1" in page.url and "models=" in page.url and results_caption(page).startswith("Results for: MNIST")


#: The button that fills a page with results; pressed (defaults: tens of seconds) only when
#: screenshots are being taken for the README.
RUN_BUTTONS = {"robustness": "Evaluate", "isa_tradeoff": "Run ISA"}
SHOT_NAMES = {"isa_tradeoff": "isa"}


@pytest.mark.parametrize("page_name", ["home", "robustness", "isa_tradeoff", "about"])
def test_every_page_renders(browser, app_url, shots, page_name):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(app_url if page_name == "home" else f"{app_url}/{page_name}")
    page.locator("h1").first.wait_for(timeout=60_000)
    app_driver.wait_idle(page)
    assert page_name == "home" or page.url.endswith(f"/{page_name}")  # an unknown page falls back to home
    if page_name in RUN_BUTTONS and "INTERP_CORE_SCREENSHOTS" in os.environ:
        page.get_by_role("button", name=RUN_BUTTONS[page_name]).click()
        app_driver.wait_idle(page, timeout=600_000)
    assert not app_driver.errors(page)
    app_driver.screenshot(page, shots / f"{SHOT_NAMES.get(page_name, page_name)}.png")


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


from app_support.demos import DEMOS  # noqa: E402

#: The readout each demo must show (the first model's goal line), in DEMOS order.
DEMO_READOUTS = {"pgd": "goal reached: label flipped 1 → 8", "isa": "goal reached: target 8 is the prediction",
                 "aai": "goal reached: label 4 kept", "robust": "attack failed: the label is still 1",
                 "start": "attack failed: the label is still 1", "uar": "goal reached: target bird is the prediction"}


def wait_results(page, timeout: float = 300_000) -> None:
    """Until a results view is drawn: its caption, its numbers table, every image and chart."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
               .some(c => c.innerText.startsWith('Results for: '))
             && document.querySelector('[data-testid="stTable"] table')""", timeout=timeout)
    app_driver.wait_idle(page, started=True, timeout=timeout)
    page.wait_for_function(app_driver.RENDERED, timeout=timeout)


def results_caption(page) -> str:
    caption = page.locator("[data-testid='stCaptionContainer']").filter(has_text="Results for:").first.inner_text()
    return caption.split(" · computed")[0]


def open_link(page, url: str) -> None:
    page.goto(url)
    wait_results(page)
    assert not app_driver.errors(page)


def test_every_demo_opens_from_home_with_its_readout(browser, app_url, shots):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    for i, demo in enumerate(DEMOS):
        page.goto(app_url)
        link = page.get_by_role("link", name="Open this demo").nth(i)
        link.wait_for(timeout=60_000)
        link.click()
        wait_results(page)
        assert not app_driver.errors(page)
        page.get_by_text(DEMO_READOUTS[demo.key], exact=True).first.wait_for(timeout=10_000)
        assert re.search(r"image=\d+", page.url) and "run=1" in page.url
        if demo.key == "robust":  # three models side by side, shared colour scale, maps over the images
            app_driver.screenshot(page, shots / "explore-three-models.png")
        if demo.key == "start":  # the same attack from a random start flips what the authors' start kept
            page.get_by_text("goal reached: label flipped 1 → 8", exact=True).first.wait_for(timeout=10_000)
            cells = [c.inner_text() for c in page.locator("[data-testid='stTable'] tbody tr").all()]
            authors, random = (re.findall(r"(\d+)%", row) for row in cells)
            assert int(authors[0]) > 50 > int(random[0])  # the box cancels most of the stalled attack's steps
            assert page.locator("[data-testid='stPlotlyChart'] .main-svg").count() >= 1  # loss and box share
            app_driver.screenshot(page, shots / "random-start.png")


def test_a_false_bound_shows_the_true_sign(browser, app_url):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    open_link(page, f"{app_url}/explore?image=8&models=mnist-smallgap-normal-paper&attack=pgd&eps=0.0"
                    "&explainers=cam&run=1")
    line = page.get_by_text("D2 of CAM/(h·w) =").first.inner_text()
    assert re.search(r"= 0\.0000 < bound ½\(Z_y − Z_t\) = [1-9]", line) and "does not apply" in line
    assert "≥" not in line


def test_a_failed_isa_is_marked_and_not_magnified(browser, app_url):
    """γ = 0.03 is beyond ISA's working range on this image: the attack returns the clean image."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    open_link(page, f"{app_url}/explore?image=0&models=mnist-smallgap-normal-paper&attack=isa&eps=0.3&search_gamma=0"
                    "&gamma=0.03&measure=1class&explainers=cam&run=1")
    page.get_by_text("attack failed: target 1 not reached (prediction 4)").wait_for(timeout=10_000)
    alts = [img.get_attribute("alt") or "" for img in page.locator("[data-testid='stImage'] img").all()]
    summary = next(a for a in alts if "Linf" in a)
    assert "no perturbation" in summary and not re.search(r"x\d{4,}", summary)


#: Figure type in presentation mode (pages/explore.py SIZES), and the smallest a projector needs.
PRESENT_FONT_PX, PROJECTOR_FONT_PX = 28, 24


@pytest.mark.parametrize("width, height", [(1280, 720), (1920, 1080)])
def test_presentation_mode_is_legible_on_a_projector(browser, app_url, shots, width, height):
    """A presentation link with two models at projector sizes: the sidebar folded, every figure shown
    large enough that its type is at least 24 px on screen, page text at 20 px, thumbnail buttons
    whose labels fit, one model per row; screenshots for a look."""
    sizes = re.search(r"^SIZES = .*True: \((\d+), (\d+)\)", (paths.PROJECT_ROOT / "pages" / "explore.py").read_text(),
                      re.M)
    assert int(sizes.group(2)) == PRESENT_FONT_PX  # the page's own figure type in presentation mode
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    open_link(page, f"{app_url}/explore?image=8&models=mnist-smallgap-normal-paper,mnist-smallgap-int-paper"
                    "&attack=pgd&eps=0.3&explainers=cam,gradcampp&present=1&run=1")
    left, right = page.evaluate("() => { const r = document.querySelector('[data-testid=\"stSidebar\"]')"
                                ".getBoundingClientRect(); return [r.left, r.right]; }")
    assert right <= 1 or right - left < 10, (left, right)  # folded: off screen or no width
    figures = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stImage"] img')]
        .filter(img => img.naturalWidth > 300)
        .map(img => ({natural: img.naturalWidth, shown: img.getBoundingClientRect().width}))""")
    assert len(figures) >= 2 + 2  # two models' summaries, two explainers' maps
    smallest = min(PRESENT_FONT_PX * f["shown"] / f["natural"] for f in figures)
    assert smallest >= PROJECTOR_FONT_PX, (smallest, figures)
    text_px = page.get_by_text(re.compile("^top-5 clean:")).first.evaluate("p => parseFloat(getComputedStyle(p).fontSize)")
    assert text_px >= 20  # the readouts beside the figures
    clipped = page.evaluate("""() => [...document.querySelectorAll('button')]
        .filter(b => /^#\\d+$/.test(b.innerText.trim()))
        .filter(b => { const t = b.querySelector('p') || b; return t.scrollWidth > t.clientWidth + 1; })
        .map(b => b.innerText)""")
    assert not clipped, clipped
    app_driver.screenshot(page, shots / f"presentation-{width}x{height}.png")


def test_a_shared_link_reproduces_the_view_in_a_fresh_browser(browser, app_url):
    first = browser.new_context(viewport=VIEWPORT).new_page()
    open_link(first, f"{app_url}/explore?image=8&models=mnist-smallgap-normal-paper,mnist-smallgap-int-paper"
                     "&attack=pgd&eps=0.2&explainers=cam,saliency&shared=1&run=1")
    first.get_by_text("Shared colour scale across models").wait_for()
    shared_url = first.url
    assert "shared=1" in shared_url and "eps=0.2" in shared_url
    second = browser.new_context(viewport=VIEWPORT).new_page()  # no cookies, no session: a colleague's browser
    open_link(second, shared_url)
    assert results_caption(second) == results_caption(first)
    assert app_driver.metrics_table(second) == app_driver.metrics_table(first)
    assert second.url == shared_url


def test_no_request_leaves_the_machine(browser, app_url):
    from urllib.parse import urlparse

    page = browser.new_context(viewport=VIEWPORT).new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).scheme not in ("data", "blob") and
            urlparse(r.url).hostname not in ("127.0.0.1", "localhost") else None)
    page.goto(app_url)
    page.get_by_role("link", name="Open this demo").first.wait_for(timeout=60_000)
    page.get_by_role("link", name="Open this demo").nth(3).click()  # three models, overlays, latex, charts
    wait_results(page)
    for name in ("robustness", "isa_tradeoff", "train", "about"):
        page.goto(f"{app_url}/{name}")
        page.locator("h1").first.wait_for(timeout=60_000)
        app_driver.wait_idle(page)
    page.wait_for_timeout(1000)
    assert outside == []


def test_robustness_evaluation_can_be_cancelled(browser, app_url):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{app_url}/robustness")
    page.get_by_text(re.compile(r"Estimated time: at most about \d+ s")).wait_for(timeout=120_000)
    page.locator("[data-testid='stSidebar']").get_by_text("strong", exact=True).click()  # settings not cached
    app_driver.wait_idle(page)
    page.get_by_text(re.compile(r"Estimated time: at most about \d+ s")).wait_for(timeout=120_000)
    page.get_by_role("button", name="Evaluate").click()
    page.locator("[data-testid='stProgress']").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Evaluation cancelled").wait_for(timeout=120_000)
    app_driver.wait_idle(page)
    assert not page.locator("[data-testid='stTable']").count()


def test_a_student_follows_the_teachers_change_within_3_s(browser, app_url, shots):
    """Two browsers: the teacher opens a class on the Lesson page; the student opens its follow link;
    the teacher's Next reaches the student's page within 3 s (a sidebar fragment polls every second)."""
    import time

    from app_support.lessons import GUIDED

    teacher = browser.new_context(viewport=VIEWPORT).new_page()
    teacher.goto(f"{app_url}/lesson")
    teacher.get_by_role("button", name="Next").wait_for(timeout=60_000)
    teacher.get_by_text("Class", exact=True).click()
    teacher.get_by_role("button", name="Teach").click()
    code_text = teacher.get_by_text(re.compile(r"^Class code [A-Z2-9]{4}$"))
    code_text.wait_for(timeout=30_000)
    code = code_text.inner_text().split()[-1]
    student = browser.new_context(viewport=VIEWPORT).new_page()
    student.goto(f"{app_url}/lesson?follow={code}")
    student.get_by_text(f"Following class {code}", exact=False).wait_for(timeout=60_000)
    app_driver.wait_idle(student)
    step2 = GUIDED.steps[1].title
    assert student.get_by_role("heading", name=step2).count() == 0
    teacher.get_by_role("button", name="Next").click()
    teacher.get_by_role("heading", name=step2).wait_for(timeout=30_000)
    changed = time.monotonic()
    student.get_by_role("heading", name=step2).wait_for(timeout=10_000)
    lag = time.monotonic() - changed
    print(f"the student followed after {lag:.2f} s")
    assert lag <= 3.0, f"the student saw the teacher's step after {lag:.1f} s"
    app_driver.screenshot(student, shots / "lesson-student.png")
    student.get_by_role("button", name="Branch off").click()  # on their own: the teacher's next step stays away
    student.get_by_role("button", name="Follow again").wait_for(timeout=30_000)
    teacher.get_by_role("button", name="Next").click()
    teacher.get_by_role("heading", name=GUIDED.steps[2].title).wait_for(timeout=30_000)
    time.sleep(3)
    assert student.get_by_role("heading", name=step2).count() == 1
    student.get_by_role("button", name="Follow again").click()  # back to the teacher's step 3
    student.get_by_role("heading", name=GUIDED.steps[2].title).wait_for(timeout=10_000)
    teacher.get_by_text("Reveal", exact=True).click()
    teacher.get_by_text("Open this view (the attack runs)").click()  # the teacher opens the view on Explore
    student.wait_for_url(re.compile(r"/explore\?"), timeout=30_000)  # and the student's page follows
    student.get_by_role("heading", name="Explore an attack").wait_for(timeout=30_000)
    app_driver.wait_idle(student, timeout=300_000)
    assert "image=0" in student.url and "attack=aai" in student.url
    # back to the lesson: the page change from Explore that left followers' pages blank under load
    teacher.locator("[data-testid='stSidebar'] [data-testid='stPageLink']").filter(has_text="Lesson").click()
    teacher.get_by_role("heading", name=GUIDED.steps[2].title).wait_for(timeout=30_000)
    student.get_by_role("heading", name=GUIDED.steps[2].title).wait_for(timeout=10_000)
    assert re.search(r"/lesson\?", student.url)
    assert not app_driver.errors(teacher) and not app_driver.errors(student)
