"""A lesson's slides (app_support/lesson_slides.py): each step's view is computed as its page
computes it (the same numbers as the Explore page opened with the step's link), and the Lesson
page makes a valid slides file."""

from __future__ import annotations

import json
import sys

import pytest
from streamlit.testing.v1 import AppTest

from interp_core import paths
from interp_core.services.explore import METRIC_DEFINITIONS

sys.path.insert(0, str(paths.PROJECT_ROOT))
from tests.test_slides import Parsed, check_self_contained, numbers_close  # noqa: E402

pytestmark = pytest.mark.integration
ROOT = paths.PROJECT_ROOT
TIMEOUT = 180

#: Links whose settings the page converts: CIFAR-10's eps in 1/255 units, a targeted ISA with γ given.
LINKS = {
    "cifar_units": {"dataset": "cifar10", "image": "35", "models": "cifar10-smallgap-normal-paper", "attack": "pgd",
                    "eps": "4", "steps": "3", "explainers": "cam,saliency", "run": "1"},
    "isa_target": {"dataset": "mnist", "image": "18", "models": "mnist-smallgap-normal-paper,mnist-smallgap-int-paper",
                   "attack": "isa", "eps": "0.2", "search_gamma": "0", "gamma": "0.005", "steps": "5",
                   "target": "5", "explainers": "cam", "run": "1"},
}


def explore_page(params: dict[str, str]) -> AppTest:
    """The Explore page opened with the link ``params`` (its results computed)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.query_params.update(params)
    at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("case", list(LINKS))
def test_a_step_is_computed_as_the_explore_page_computes_its_link(case):
    from app_support.explore_runs import link_request, view_result

    at = explore_page(LINKS[case])
    assert not [w.value for w in at.warning if "not used" in w.value]  # the page used every setting of the link
    caption = next(c.value for c in at.caption if c.value.startswith("Results for:"))
    request, x, ignored = link_request(LINKS[case])
    result, notes = view_result(request, x)
    assert not ignored and not notes
    settings = ", ".join(f"{k}=" + (f"{v:.4g}" if isinstance(v, float) else f"{v}")
                         for k, v in result.attack.items() if k not in ("name", "target"))
    assert f" · {settings} · " in caption  # the same attack settings (eps converted from the link's units)
    table = at.table[0].value
    rows = [(m, e) for m in result.models for e in m.maps]
    assert list(table["model"]) == [m.model for m, _ in rows]
    for (m, e), (_, shown) in zip(rows, table.iterrows()):
        for key in METRIC_DEFINITIONS:  # the page shows 6 significant figures
            assert float(shown[key]) == pytest.approx(float(m.maps[e].metrics[key][0]), rel=1e-5, abs=1e-9), key


def test_the_lesson_page_makes_slides_of_every_step():
    from app_support.explore_runs import link_request, view_result
    from app_support.lessons import Lesson, Step

    lesson = Lesson("Two views", (
        Step("FGSM on a 1", "pages/explore.py", {**LINKS["isa_target"], "attack": "fgsm", "eps": "0.3", "image": "8"},
             "One signed step.", "Will the 1 survive?", "It flips on the normal network."),
        Step("Random start", "pages/random_start.py", {"dataset": "mnist", "image": "8", "eps": "0.35", "steps": "5",
                                                       "run": "1"}, "Two starts.", "Which flips?", "Neither."),
    ))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/lesson.py")
    at.session_state["lesson_own"] = lesson.to_json()
    at.run()
    at.radio(key="lesson_key").set_value("own").run()
    at.button(key="lesson_slides_make").click().run()
    assert not at.exception, at.exception
    made_for, text = at.session_state["lesson_slides"]
    assert json.loads(made_for) == json.loads(lesson.to_json())
    parsed = Parsed(text)
    # title; step 1: question, images, maps of two models, numbers; step 2: question, images, maps of two starts, numbers
    assert parsed.sections == ["title", "question", "images", "maps", "maps", "numbers",
                               "question", "images", "maps", "maps", "numbers"]
    check_self_contained(text, parsed)
    assert [link.split("?")[0].rsplit("/", 1)[1] for link in parsed.links] == ["explore", "random_start"]
    assert "It flips on the normal network." in text and "Which flips?" in text
    header = ["model", "explainer", *METRIC_DEFINITIONS]
    first = parsed.rows.index(header)
    request, x, _ = link_request(lesson.steps[0].params)
    result, _ = view_result(request, x)
    expected = [(m, e) for m in result.models for e in m.maps]
    for row, (m, e) in zip(parsed.rows[first + 1:first + 1 + len(expected)], expected):
        assert row[0] == m.model
        assert all(numbers_close(cell, m.maps[e].metrics[key][0]) for cell, key in zip(row[2:], METRIC_DEFINITIONS))
