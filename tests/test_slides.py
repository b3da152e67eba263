"""interp_core.services.slides: the slides file of an Explore view and of a lesson is self-contained
(every image a PNG data URI of the size it claims, nothing fetched), has one section per slide, and
shows the result's own numbers."""

from __future__ import annotations

import base64
import html
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from interp_core.attacks import PGD
from interp_core.interpret import LABELS
from interp_core.services import figures, slides
from interp_core.services.explore import METRIC_DEFINITIONS, ExploreAttack, ExploreImages, explore

LINK = "http://localhost:8501/explore?dataset=mnist&image=8&attack=pgd&run=1"
EXPLAINERS = ["cam", "saliency"]


class Parsed(HTMLParser):
    """The parts of a slides file the tests read: sections (their data-kind), images (attributes),
    table rows (cell texts) and the text of the link paragraphs."""

    def __init__(self, text: str):
        super().__init__()
        self.sections, self.images, self.rows, self.links = [], [], [], []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_link = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("data-kind"))
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p" and attrs.get("class") == "link":
            self._in_link = True
            self.links.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
            self._row = None
        elif tag == "p":
            self._in_link = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_link:
            self.links[-1] += data


def decoded_png(src: str) -> Image.Image:
    """The PNG of a data URI; fails the test for anything else."""
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    data = base64.b64decode(src[len(prefix):], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def check_self_contained(text: str, parsed: Parsed) -> None:
    """Every image a PNG data URI of its stated size; no address outside the link paragraphs (the
    view's share link, shown as text), no attribute or style that fetches anything."""
    for attrs in parsed.images:
        image = decoded_png(attrs["src"])
        assert image.format == "PNG" and (image.width, image.height) == (int(attrs["width"]), int(attrs["height"]))
    rest = text
    for link in parsed.links:
        rest = rest.replace(html.escape(link), "")
    rest = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", rest)
    assert "http" not in rest.lower() and "//" not in rest
    values = re.findall(r"""\b(?:src|href|action|poster)\s*=\s*["']?([^"'\s>]*)""", text)
    assert len(values) == len(parsed.images) and all(v.startswith("data:image/png;base64,") for v in values)
    assert "url(" not in text and "@import" not in text and "<link" not in text


def numbers_close(shown: str, value: float) -> bool:
    """``shown`` is ``value`` to the slides' DIGITS significant figures."""
    return float(shown) == pytest.approx(float(value), rel=10 ** (1 - slides.DIGITS), abs=1e-12)


@pytest.fixture(scope="module")
def result():
    from interp_core.data import load_dataset
    from interp_core.models import load_model

    data = load_dataset("mnist", "demo")
    models = {name: load_model(f"mnist-smallgap-{name}-paper")[0] for name in ("normal", "int")}
    return explore(models, ExploreImages(data.images[8:9], data.labels[8:9], data.class_names, "MNIST", [8]),
                   ExploreAttack(PGD(0.3, 0.05, 5), {"name": "pgd", "eps": 0.3, "step_size": 0.05, "steps": 5}),
                   EXPLAINERS, trajectory_explainer=None)


def test_a_view_is_a_title_then_images_maps_per_model_and_numbers(result):
    text = slides.view_slides(result, LINK, title="PGD on a 1")
    parsed = Parsed(text)
    assert parsed.sections == ["title", "images", "maps", "maps", "numbers"]
    assert text.count("<section") == len(parsed.sections)
    check_self_contained(text, parsed)
    assert parsed.links == [LINK]
    # the images are the figures of this result, at their own size: per model the summary, then
    # per model one maps panel per explainer
    expected = [figures.model_summary_image(result, i, cell=slides.CELL).shape for i in range(2)]
    expected += [figures.panels_image([figures.map_row(result, i, e)], slides.CELL).shape
                 for i in range(2) for e in EXPLAINERS]
    assert [(int(a["height"]), int(a["width"]), 3) for a in parsed.images] == expected
    for attrs, shape in zip(parsed.images, expected):
        assert np.asarray(decoded_png(attrs["src"]).convert("RGB")).shape == shape


def test_the_numbers_shown_are_the_results(result):
    rows = Parsed(slides.view_slides(result, LINK)).rows
    metric_header = ["model", "explainer", *METRIC_DEFINITIONS]
    at = rows.index(metric_header)
    shown = rows[at + 1:at + 1 + 2 * len(EXPLAINERS)]
    assert [(r[0], r[1]) for r in shown] == [(m.model, LABELS[e]) for m in result.models for e in EXPLAINERS]
    for row, (m, e) in zip(shown, [(m, e) for m in result.models for e in EXPLAINERS]):
        for cell, key in zip(row[2:], METRIC_DEFINITIONS):
            assert numbers_close(cell, m.maps[e].metrics[key][0]), (m.model, e, key, cell)
    readouts = rows[1:1 + len(result.models)]
    for row, m in zip(readouts, result.models):
        assert row[0] == m.model and row[1].startswith(result.class_names[m.clean_pred[0]] + " (")
        assert row[2].startswith(result.class_names[m.adv_pred[0]] + " (")
        for cell, value in zip(row[3:], (m.linf[0], m.l2[0], m.d1_cam_hw[0], m.d2_cam_hw[0], m.bound[0])):
            assert numbers_close(cell, value)


def test_a_changed_number_is_caught(result):
    """The number check can fail: a metric moved by more than the rounding shows another number."""
    m = result.models[0].maps["cam"]
    before = m.metrics["D1 raw"].copy()
    m.metrics["D1 raw"] = before * 1.01
    try:
        rows = Parsed(slides.view_slides(result, LINK)).rows
    finally:
        m.metrics["D1 raw"] = before
    cell = rows[rows.index(["model", "explainer", *METRIC_DEFINITIONS]) + 1][2]
    assert not numbers_close(cell, before[0])


def test_a_lesson_has_a_title_then_per_step_a_question_and_its_answer(result):
    steps = [slides.StepView("Flip", "The attack flips the 1.", "Will it flip?", "It flips: 1 -> 4", LINK, result,
                             ("Refused: a third model misclassifies this image",)),
             slides.StepView("Upload", "An uploaded image.", "Does it?", "Yes", "", None,
                             ("This view could not be computed: its image comes from an upload.",))]
    text = slides.lesson_slides("A <lesson>", steps)
    parsed = Parsed(text)
    assert parsed.sections == ["title", "question", "images", "maps", "maps", "numbers", "question", "answer"]
    check_self_contained(text, parsed)
    assert "A &lt;lesson&gt;" in text and "<lesson>" not in text  # texts are escaped
    question = text.split("<section")[2]
    assert "Will it flip?" in question and "It flips" not in question  # predict first: no answer yet
    answer = text.split("<section")[3]
    assert "Measured: It flips: 1 -&gt; 4" in answer and "a third model misclassifies" in answer
    assert "could not be computed: its image comes from an upload" in text.split("<section")[8]


def test_png_data_uri_round_trips_pixels():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(decoded_png(slides.png_data_uri(rgb)).convert("RGB")), rgb)
