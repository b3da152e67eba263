"""Slides: an Explore result, or a lesson of several, as one self-contained HTML file.

The file needs nothing but itself: every image is a PNG inside a ``data:`` URI (drawn with PIL by
``services.figures``), the style is one inline ``<style>`` block and the navigation a few lines of
inline script; it names no address to fetch. Each slide is one ``<section class="slide">``. On
screen one slide shows at a time (arrow keys, Page Up/Down, space, or the buttons at the bottom);
without script every slide shows, one below the other. Printed (or saved as PDF from the browser's
print dialog) each slide takes one page.

``result_slides`` makes the slides of one result: its images (per model the clean and adversarial
images and the amplified perturbation, with the goal and bound readouts), its maps (per model every
explainer's clean, adversarial and difference maps side by side) and its numbers (the attack's
settings, the per-model readouts, every metric of every explainer, and the link that reopens the
view). ``view_slides`` is the file of one Explore view; ``lesson_slides`` the file of a lesson: a
title slide, then per step a question slide (what the class sees and the question it answers
first) and the answer slide with the step's result slides.

Numbers are shown to ``DIGITS`` significant figures; the text of every readout is the one the app
shows (``services.explore``'s readouts), so a slide says what the page says.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from interp_core.interpret import LABELS
from interp_core.services import figures
from interp_core.services.explore import (METRIC_DEFINITIONS, ExploreResult, bound_readout, goal_readout,
                                          settings_line)

#: Significant figures of the numbers on the slides.
DIGITS = 4
#: Panel size of the slides' images, pixels (a projected slide is seen from afar).
CELL = 128

_CSS = """
body { margin: 0; font-family: system-ui, sans-serif; color: #111; background: #fff; }
.slide { box-sizing: border-box; min-height: 100vh; padding: 3vh 4vw 8vh; border-bottom: 1px solid #ccc; }
.slide h1 { font-size: 2.2rem; margin: 0 0 0.6em; }
.slide h2 { font-size: 1.6rem; margin: 0 0 0.5em; }
.slide h3 { font-size: 1.15rem; margin: 0.8em 0 0.3em; }
.slide p, .slide li { font-size: 1.1rem; line-height: 1.45; }
.slide img { max-width: 100%; height: auto; image-rendering: pixelated; display: block; margin: 0.3em 0; }
.slide table { border-collapse: collapse; font-size: 0.95rem; margin: 0.5em 0; }
.slide th, .slide td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
.slide td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 0.5em 2em; align-items: flex-start; }
.cards > div { max-width: 100%; }
.cards p { max-width: 30em; }
.kicker { color: #555; font-size: 1rem; margin: 0 0 0.3em; }
.question { border-left: 6px solid #1f77b4; padding: 0.4em 1em; background: #eef5fb; font-size: 1.35rem; }
.answer { border-left: 6px solid #2ca02c; padding: 0.4em 1em; background: #eef8ee; font-size: 1.2rem; }
.note { border-left: 6px solid #d62728; padding: 0.4em 1em; background: #fbeeee; }
.link { font-family: monospace; font-size: 0.85rem; word-break: break-all; background: #f3f3f3; padding: 0.3em; }
nav { position: fixed; bottom: 1vh; right: 2vw; display: none; gap: 0.5em; align-items: center; }
nav button { font-size: 1rem; padding: 0.2em 0.8em; }
body.deck .slide { display: none; border: none; }
body.deck .slide.current { display: block; }
body.deck nav { display: flex; }
@page { size: landscape; margin: 1cm; }
@media print {
  html { font-size: 10pt; }
  body.deck .slide, .slide { display: block; min-height: 0; padding: 0; border: none; break-after: page; }
  .slide:last-of-type { break-after: auto; }
  .slide h1 { font-size: 1.8rem; }
  .slide h2 { font-size: 1.4rem; margin-bottom: 0.3em; }
  .slide p, .slide li { font-size: 1rem; line-height: 1.3; margin: 0.3em 0; }
  .cards { gap: 0.3em 1.5em; }
  .cards > div { max-width: 48%; }
  nav, body.deck nav { display: none; }
}
"""

_SCRIPT = """
(function () {
  var slides = document.querySelectorAll('.slide'), at = 0, count = document.getElementById('count');
  function show(i) {
    at = Math.max(0, Math.min(slides.length - 1, i));
    slides.forEach(function (s, k) { s.classList.toggle('current', k === at); });
    count.textContent = (at + 1) + ' / ' + slides.length;
  }
  document.body.classList.add('deck');
  document.getElementById('previous').onclick = function () { show(at - 1); };
  document.getElementById('next').onclick = function () { show(at + 1); };
  document.addEventListener('keydown', function (e) {
    if (['ArrowRight', 'ArrowDown', 'PageDown', ' '].indexOf(e.key) >= 0) { show(at + 1); e.preventDefault(); }
    if (['ArrowLeft', 'ArrowUp', 'PageUp'].indexOf(e.key) >= 0) { show(at - 1); e.preventDefault(); }
    if (e.key === 'Home') { show(0); }
    if (e.key === 'End') { show(slides.length - 1); }
  });
  show(0);
})();
"""


def png_data_uri(rgb: np.ndarray) -> str:
    """An RGB image (H, W, 3) uint8 as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(rgb: np.ndarray, alt: str) -> str:
    """An <img> of rgb (H, W, 3) uint8 at its own pixel size, the image inside the tag."""
    height, width = rgb.shape[:2]
    return (f'<img src="{png_data_uri(rgb)}" width="{width}" height="{height}" alt="{html.escape(alt)}">')


def _number(value: float) -> str:
    return f"{float(value):.{DIGITS}g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> str:
    """An HTML table; the cells from column ``numeric_from`` on are right-aligned numbers."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if c >= numeric_from else ""}>{html.escape(v)}</td>'
                                   for c, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(kind: str, body: str) -> str:
    return f'<section class="slide" data-kind="{kind}">{body}</section>'


def metric_rows(result: ExploreResult, index: int = 0) -> list[list[str]]:
    """The numbers slide's table: per (model, explainer) of image ``index``, the model, the
    explainer's label and every METRIC_DEFINITIONS value to DIGITS significant figures."""
    return [[m.model, LABELS.get(name, name), *(_number(ms.metrics[k][index]) for k in METRIC_DEFINITIONS)]
            for m in result.models for name, ms in m.maps.items()]


def result_slides(result: ExploreResult, heading: str, link: str = "", lead: str = "",
                  notes: Sequence[str] = (), index: int = 0) -> list[str]:
    """The slides of image ``index`` of one result, as ``<section>`` strings: the images slide
    (``lead``, an HTML fragment, at its top, e.g. a lesson's measured answer; then per model the
    clean image, adversarial image and amplified perturbation with the goal and bound readouts, and
    ``notes``, e.g. models that refused the image), one maps slide per model (every explainer's
    clean, adversarial and difference maps of the true class, one row each on its own symmetric
    scale, on the explainer's own grid) and the numbers slide (the settings line, per model the
    predictions, perturbation size and bound readout, the metrics table (``metric_rows``), the
    metrics' definitions, and ``link``, the address that reopens the view, as text)."""
    names, title = result.class_names, html.escape(heading)
    cards = []
    for i, m in enumerate(result.models):
        summary, captions = figures.summary_text(result, i, index)
        cards.append(f"<div>{_img(figures.model_summary_image(result, i, index, cell=CELL), f'{summary}: ' + '; '.join(captions))}"
                     f"<p>{html.escape(goal_readout(result, i, index))}<br>{html.escape(bound_readout(m, index))}</p></div>")
    notes_html = "".join(f'<p class="note">{html.escape(note)}</p>' for note in notes)
    slides = [_section("images", f"<p class=kicker>{title}</p><h2>Clean and adversarial images</h2>{lead}"
                                 f'<div class="cards">{"".join(cards)}</div>{notes_html}')]
    for i, m in enumerate(result.models):
        maps = "".join(_img(figures.panels_image([figures.map_row(result, i, name, index)], CELL),
                            f"{m.model}, {LABELS.get(name, name)}: clean, adversarial and difference maps")
                       for name in m.maps)
        slides.append(_section("maps", f"<p class=kicker>{title}</p><h2>Interpretation maps: {html.escape(m.model)}</h2>"
                               "<p>Per explainer: clean map, adversarial map and their difference, for the true "
                               "class, on one symmetric RdBu scale per explainer (red negative, blue positive).</p>"
                               f'<div class="cards">{maps}</div>'))
    readouts = [[m.model, f"{names[m.clean_pred[index]]} ({m.clean_prob[index].max():.0%})",
                 f"{names[m.adv_pred[index]]} ({m.adv_prob[index].max():.0%})", _number(m.linf[index]),
                 _number(m.l2[index]), _number(m.d1_cam_hw[index]), _number(m.d2_cam_hw[index]),
                 _number(m.bound[index])] for m in result.models]
    definitions = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in METRIC_DEFINITIONS.items())
    numbers = (f"<p class=kicker>{title}</p><h2>Numbers</h2><p>{html.escape(settings_line(result))}</p>"
               + _table(["model", "clean prediction", "adversarial prediction", "l-inf", "l2", "D1 CAM/(h·w)",
                         "D2 CAM/(h·w)", "bound ½(Z_y − Z_t)"], readouts, 3)
               + _table(["model", "explainer", *METRIC_DEFINITIONS], metric_rows(result, index), 2)
               + f"<ul>{definitions}</ul>"
               + (f'<p>Open this view in the app:</p><p class="link">{html.escape(link)}</p>' if link else ""))
    slides.append(_section("numbers", numbers))
    return slides


def document(title: str, slides: Sequence[str]) -> str:
    """The HTML file of ``slides`` (``<section>`` strings) under ``title``: inline style and script,
    nothing fetched."""
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(slides)
            + '\n<nav><button id=previous type=button>&larr; previous</button><span id=count></span>'
              '<button id=next type=button>next &rarr;</button></nav>'
            + f"<script>{_SCRIPT}</script></body></html>\n")


def view_slides(result: ExploreResult, link: str = "", title: str = "Explore") -> str:
    """The slides file of one Explore view: a title slide (``title`` and the settings line), then
    ``result_slides``."""
    cover = _section("title", f"<h1>{html.escape(title)}</h1><p>{html.escape(settings_line(result))}</p>"
                              f"<p>Models: {html.escape(', '.join(m.model for m in result.models))}</p>")
    return document(title, [cover, *result_slides(result, title, link)])


@dataclass(frozen=True)
class StepView:
    """One lesson step for the slides: its texts, the address of its view, and the view's result
    (None with ``notes`` saying why when it could not be computed; with a result, ``notes`` may name
    models that refused the image)."""

    title: str
    explain: str
    predict: str
    answer: str
    link: str
    result: ExploreResult | None
    notes: tuple[str, ...] = ()


def lesson_slides(title: str, steps: Sequence[StepView]) -> str:
    """The slides file of a lesson: a title slide listing the steps, then per step its question
    slide (what the class sees and the question to answer first) and its answer slide (the measured
    answer over the step's ``result_slides``; a step without a result gets one answer slide with
    its notes)."""
    items = "".join(f"<li>{html.escape(s.title)}</li>" for s in steps)
    slides = [_section("title", f"<h1>{html.escape(title)}</h1><p>{len(steps)} steps; each asks a question "
                                f"before its measured answer.</p><ol>{items}</ol>")]
    for n, step in enumerate(steps, 1):
        heading = f"Step {n} of {len(steps)}: {step.title}"
        slides.append(_section("question", f"<p class=kicker>{html.escape(heading)}</p><h2>{html.escape(step.title)}"
                                           f"</h2><p>{html.escape(step.explain)}</p>"
                                           f'<p class="question">Predict first: {html.escape(step.predict)}</p>'))
        lead = f'<p class="answer">Measured: {html.escape(step.answer)}</p>'
        if step.result is None:
            notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in step.notes)
            slides.append(_section("answer", f"<p class=kicker>{html.escape(heading)}</p><h2>Answer</h2>{lead}{notes}"
                                   + (f'<p class="link">{html.escape(step.link)}</p>' if step.link else "")))
        else:
            slides += result_slides(step.result, heading, step.link, lead, step.notes)
    return document(title, slides)
