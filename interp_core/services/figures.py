"""Figures for the app's results views (library side: no streamlit, no computation beyond choosing a
colour range). Interpretation maps are drawn as images: a symmetric colour scale on ColorBrewer
RdBu, a diverging scale that stays readable for the common colour-vision deficiencies, rounded up
to a round number so that the colour bar's ticks are round too, with pixels enlarged without blur
(fast to build and to send, unlike a heatmap per panel). Maps can also be laid over the image
(the view of Grad-CAM tools). Text is drawn at a readable size whatever the number of models: a
figure grows rather than shrinking its type. Curves and bars are plotly figures.
"""

from __future__ import annotations

import functools
import io
import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots

from interp_core.interpret import LABELS
from interp_core.services.explore import (ExploreResult, Trajectory, bound_readout, goal_readout,
                                          perturbation_readout, settings_line)


PANEL_PX = 150
#: Smallest type drawn into a figure, in pixels (a figure is shown at its own width or wider).
FONT_PX = 15
#: Frame of panels (so white pixels keep an edge on a white page) and of the chosen thumbnail.
OUTLINE = (120, 120, 120)
SELECTED = (31, 119, 180)


# Colour-blind-safe diverging scale (ColorBrewer RdBu, 7 classes), low = red, high = blue.
_RDBU = np.array([[178, 24, 43], [239, 138, 98], [253, 219, 199], [247, 247, 247],
                  [209, 229, 240], [103, 169, 207], [33, 102, 172]], dtype=np.float32)


def nice_limit(value: float) -> float:
    """The smallest round number (1, 2, 2.5 or 5 times a power of ten) >= |value|; 1 for 0 or a
    non-finite value. Colour scales use it so that their ticks fall on round values."""
    value = abs(float(value))
    if value == 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value * (1 - 1e-9))


def _tick(value: float) -> str:
    return "0" if value == 0 else f"{value:+.4g}"


def diverging_rgb(values: np.ndarray, limit: float) -> np.ndarray:
    """Signed values (h, w) -> uint8 RGB (h, w, 3) on RdBu (red negative, blue positive), symmetric
    scale [-limit, limit]."""
    pos = (np.clip(values / max(limit, 1e-12), -1, 1) + 1) / 2 * (len(_RDBU) - 1)
    low = np.floor(pos).astype(int).clip(0, len(_RDBU) - 2)
    frac = (pos - low)[..., None]
    return (_RDBU[low] * (1 - frac) + _RDBU[low + 1] * frac).astype(np.uint8)


def image_rgb(x: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> uint8 RGB (H, W, 3)."""
    img = (np.clip(x, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def overlay_rgb(x: np.ndarray, values: np.ndarray, limit: float, opacity: float = 0.8) -> np.ndarray:
    """A signed map (H, W) laid over the image x (C, H, W) in [0, 1]: the image in grey, tinted with
    the map's RdBu colour in proportion to |value| / limit (up to ``opacity``). uint8 RGB (H, W, 3)."""
    grey = np.clip(x, 0, 1).mean(0)[..., None] * 0.6 + 0.2  # kept off black and white: the tint shows
    alpha = opacity * np.clip(np.abs(values) / max(limit, 1e-12), 0, 1)[..., None]
    tinted = grey * 255 * (1 - alpha) + diverging_rgb(values, limit).astype(np.float32) * alpha
    return tinted.round().astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_width(text: str, font) -> int:
    return int(math.ceil(font.getlength(text)))


def panels_image(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]], float | None]],
                 cell: int = PANEL_PX, font_px: int = FONT_PX, highlight: int | None = None) -> np.ndarray:
    """Rows of titled panels drawn into one RGB image (H, W, 3) uint8.

    rows: (title, [(caption, panel)], limit); a panel is an RGB image (h, w, 3) uint8 or a signed
    map (h, w) drawn on RdBu with the row's symmetric ``limit``, and a row with a limit ends in a
    colour bar with ticks at -limit, -limit/2, 0, limit/2, limit (give a ``nice_limit`` for round
    ticks). Pixels are enlarged without blur; every panel has a thin grey frame (the frame of
    panel ``highlight`` of each row is thick and blue: a chosen thumbnail). A column is as wide as
    its longest caption, so type keeps ``font_px`` pixels (at least FONT_PX - 3). Text uses PIL's
    built-in font, which has no Greek letters or arrows: keep it ASCII.
    """
    font, small = _font(max(font_px, FONT_PX - 3)), _font(max(font_px - 2, FONT_PX - 3))
    pad, title_h, caption_h = 8, font.size + 10, small.size + 6
    columns = max(len(panels) for _, panels, _ in rows)
    widths = [max([cell] + [_text_width(panels[c][0], small) + 4 for _, panels, _ in rows if c < len(panels)])
              for c in range(columns)]
    ticks = [_tick(f * limit) for _, _, limit in rows if limit is not None for f in (1, 0.5, -0.5, -1)]
    bar_w = 20 + max([_text_width(t, small) for t in ticks], default=0) + pad if ticks else 0
    width = max([pad + sum(w + pad for w in widths) + bar_w]
                + [2 * pad + _text_width(title, font) for title, _, _ in rows])
    row_h = title_h + caption_h + cell + pad
    canvas = Image.new("RGB", (width, len(rows) * row_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (title, panels, limit) in enumerate(rows):
        top = pad + r * row_h
        draw.text((pad, top), title, fill="black", font=font)
        left = pad
        for c, (caption, panel) in enumerate(panels):
            rgb = panel if panel.ndim == 3 else diverging_rgb(panel, limit or 1.0)
            draw.text((left, top + title_h), caption, fill=(60, 60, 60), font=small)
            box = (left, top + title_h + caption_h)
            canvas.paste(Image.fromarray(rgb).resize((cell, cell), Image.NEAREST), box)
            chosen = highlight == c
            for k in range(4 if chosen else 1):
                draw.rectangle((box[0] - 1 - k, box[1] - 1 - k, box[0] + cell + k, box[1] + cell + k),
                               outline=SELECTED if chosen else OUTLINE)
            left += widths[c] + pad
        if limit is not None:
            bar_top = top + title_h + caption_h
            ramp = np.linspace(limit, -limit, cell)[:, None].repeat(12, axis=1)
            canvas.paste(Image.fromarray(diverging_rgb(ramp, limit)), (left, bar_top))
            draw.rectangle((left - 1, bar_top - 1, left + 12, bar_top + cell), outline=OUTLINE)
            for frac, value in ((0.0, limit), (0.25, limit / 2), (0.5, 0.0), (0.75, -limit / 2), (1.0, -limit)):
                y = bar_top + frac * (cell - 1)
                draw.line((left + 12, y, left + 16, y), fill="black")
                draw.text((left + 18, y - small.size / 2 - 1), _tick(value), fill="black", font=small)
    return np.asarray(canvas)


def model_summary_image(result: ExploreResult, model_index: int, index: int = 0, cell: int = PANEL_PX,
                        font_px: int = FONT_PX, with_model: bool = True) -> np.ndarray:
    """One model's attack on image ``index``: clean and adversarial images with their predictions,
    and the perturbation on mid-grey (0 = grey) amplified to fill [0, 1], or "no perturbation". The
    title gives the model (unless not ``with_model``: a page that heads it already), the
    perturbation's size and whether the attack reached its goal."""
    m = result.models[model_index]
    title, captions = summary_text(result, model_index, index, with_model)
    panels = list(zip(captions, (image_rgb(result.x[index]), image_rgb(m.x_adv[index]),
                                 image_rgb(m.perturbation[index]))))
    return panels_image([(title, panels, None)], cell, font_px)


def summary_text(result: ExploreResult, model_index: int, index: int = 0,
                 with_model: bool = True) -> tuple[str, list[str]]:
    """The title and the three panel captions of ``model_summary_image`` (ASCII), e.g. for the
    image's alternative text."""
    m, names = result.models[model_index], result.class_names
    title = ((f"{m.model} | " if with_model else "") + f"Linf {m.linf[index]:.4f} | L2 {m.l2[index]:.3f} | "
             f"{goal_readout(result, model_index, index, True)}")
    return title, [f"clean: {names[m.clean_pred[index]]} ({m.clean_prob[index].max():.0%})",
                   f"adversarial: {names[m.adv_pred[index]]} ({m.adv_prob[index].max():.0%})",
                   perturbation_readout(m, index, True)]


def map_limit(result: ExploreResult, explainer: str, index: int = 0, cls: int = 0, upsampled: bool = False,
              models: Sequence[int] | None = None) -> float:
    """The round (``nice_limit``) symmetric colour limit covering the clean, adversarial and
    difference maps of ``explainer`` for the given models (all by default): one scale for them."""
    peak = 0.0
    for i in (range(len(result.models)) if models is None else models):
        ms = result.models[i].maps[explainer]
        for maps in ((ms.clean_up, ms.adv_up, ms.diff_up) if upsampled else (ms.clean, ms.adv, ms.diff)):
            peak = max(peak, float(np.abs(maps[index, cls]).max()))
    return nice_limit(peak)


def map_row(result: ExploreResult, model_index: int, explainer: str, index: int = 0, cls: int = 0,
            upsampled: bool = False, shared: bool = False, overlay: bool = False
            ) -> tuple[str, list[tuple[str, np.ndarray]], float]:
    """One ``panels_image`` row: the clean map, adversarial map and their difference of
    ``explainer`` for model ``model_index`` on image ``index`` (``cls`` 0: the true class y, 1: the
    attack class t), on the native grid or ``upsampled`` to the input, and with ``overlay`` the
    clean and adversarial maps laid over their images; its symmetric colour limit covers this
    model's maps, or with ``shared`` every model's. Returns (title, panels, limit)."""
    m = result.models[model_index]
    ms = m.maps[explainer]
    clean, adv, diff = (ms.clean_up, ms.adv_up, ms.diff_up) if upsampled else (ms.clean, ms.adv, ms.diff)
    models = None if shared else [model_index]
    limit = map_limit(result, explainer, index, cls, upsampled, models)
    panels = [("clean", clean[index, cls]), ("adversarial", adv[index, cls]), ("adv - clean", diff[index, cls])]
    if overlay:
        # overlays need the map at the input's resolution, whatever the grid shown beside them
        over = map_limit(result, explainer, index, cls, True, models)
        panels += [("clean on image", overlay_rgb(result.x[index], ms.clean_up[index, cls], over)),
                   ("adversarial on image", overlay_rgb(m.x_adv[index], ms.adv_up[index, cls], over))]
    klass = result.class_names[int((m.y if cls == 0 else m.target)[index])]
    grid = "x".join(str(v) for v in panels[0][1].shape)
    scale = "shared scale" if shared else "own scale"
    title = (f"{m.model} | {LABELS.get(explainer, explainer)} | class {klass} ({'y' if cls == 0 else 't'}) | "
             f"{grid} grid | {scale}")
    return title, panels, limit


def maps_figure(result: ExploreResult, explainer: str, index: int = 0, cls: int = 0, upsampled: bool = False,
                shared: bool = False, overlay: bool = False, cell: int = PANEL_PX, font_px: int = FONT_PX) -> np.ndarray:
    """One explainer on every model, one row per model (``map_row``): clean map, adversarial map
    and their difference. Each row has one symmetric colour scale, or with ``shared`` one scale for
    all models (so a weak map looks weak beside a strong one). RGB (H, W, 3) uint8."""
    rows = [map_row(result, i, explainer, index, cls, upsampled, shared, overlay) for i in range(len(result.models))]
    return panels_image(rows, cell, font_px)


def thumbnail_image(x: np.ndarray, selected: bool, cell: int = 64) -> np.ndarray:
    """A gallery thumbnail of x (C, H, W) in [0, 1], (cell + 8) pixels square: framed thick and
    blue when it is the chosen one, thin and grey otherwise. uint8 RGB."""
    frame = 4
    canvas = Image.new("RGB", (cell + 2 * frame, cell + 2 * frame), SELECTED if selected else "white")
    if not selected:
        ImageDraw.Draw(canvas).rectangle((frame - 1, frame - 1, cell + frame, cell + frame), outline=OUTLINE)
    canvas.paste(Image.fromarray(image_rgb(x)).resize((cell, cell), Image.NEAREST), (frame, frame))
    return np.asarray(canvas)


def thumbnail_strip(xs: Sequence[np.ndarray], selected: int | None, cell: int = 64) -> np.ndarray:
    """One row of gallery thumbnails (``thumbnail_image``) of the images ``xs`` (each C, H, W), the one
    at position ``selected`` framed as chosen: (cell + 8) x len(xs) * (cell + 8) x 3 uint8. One image for
    a gallery row, so a page sends one picture instead of one per thumbnail."""
    return np.concatenate([thumbnail_image(x, i == selected, cell) for i, x in enumerate(xs)], axis=1)


def step_image(trajectory: Trajectory, names: Sequence[str], y: int, t: int, step: int, index: int = 0,
               cell: int = 120, font_px: int = FONT_PX) -> np.ndarray:
    """The attack at one step: the iterate with its prediction, then the maps of y and t at that
    step beside the clean ones (step 0), on one shared round scale."""
    clean, now = trajectory.maps[0, index], trajectory.maps[step, index]
    pred, prob = int(trajectory.pred[step, index]), float(trajectory.prob[step, index].max())
    panels = [(f"x -> {names[pred]} ({prob:.0%})", image_rgb(trajectory.x[step, index])),
              (f"y={names[y]} clean", clean[0]), (f"y={names[y]} step {step}", now[0]),
              (f"t={names[t]} clean", clean[1]), (f"t={names[t]} step {step}", now[1])]
    limit = nice_limit(max(float(np.abs(p).max()) for _, p in panels[1:]))
    title = f"step {step} | {LABELS.get(trajectory.explainer, trajectory.explainer)} maps"
    return panels_image([(title, panels, limit)], cell, font_px)


def trajectory_figure(trajectory: Trajectory, names: Sequence[str], y: int, t: int, index: int = 0,
                      step: int | None = None) -> go.Figure:
    """Probabilities of y and t and the raw l1 discrepancies D1, D2 at every attack step."""
    steps = np.arange(trajectory.x.shape[0])
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=steps, y=trajectory.prob[:, index, y], name=f"p(y={names[y]})", line_color="#2166ac"))
    fig.add_trace(go.Scatter(x=steps, y=trajectory.prob[:, index, t], name=f"p(t={names[t]})", line_color="#b2182b"))
    fig.add_trace(go.Scatter(x=steps, y=trajectory.d1[:, index], name="D1 raw", line_dash="dot", line_color="#762a83"),
                  secondary_y=True)
    fig.add_trace(go.Scatter(x=steps, y=trajectory.d2[:, index], name="D2 raw", line_dash="dash", line_color="#1b7837"),
                  secondary_y=True)
    if step is not None:
        fig.add_vline(x=step, line_color="gray")
    fig.update_layout(height=260, margin=dict(l=5, r=5, t=10, b=5), xaxis_title="attack step",
                      legend=dict(orientation="h", y=-0.3), font=dict(size=14))
    fig.update_yaxes(title_text="probability", range=[0, 1], secondary_y=False)
    # its own round ticks, not ticks lined up with the probability grid (which land on odd values)
    fig.update_yaxes(title_text=f"{LABELS.get(trajectory.explainer, trajectory.explainer)} discrepancy",
                     secondary_y=True, rangemode="tozero", tickmode="auto", nticks=6, showgrid=False)
    return fig


#: Curve colours, one per model: the Okabe-Ito colour-blind-safe set, no two alike (the app theme's
#: own palette starts with two blues that a projector shows as one).
CURVE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#000000", "#56B4E9", "#F0E442")


def curves_figure(curves: dict[str, tuple[Sequence[float], Sequence[float]]], x_title: str, y_title: str,
                  y_range: tuple[float, float] | None = None,
                  reported: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None) -> go.Figure:
    """Line plot of named (x, y) curves, e.g. robust accuracy vs eps per model, each in its own
    colour of ``CURVE_COLOURS``; ``reported`` (same names): the numbers the curves re-test, drawn
    dashed in the curve's colour and named "<name> (reported)"."""
    colours = {name: CURVE_COLOURS[i % len(CURVE_COLOURS)] for i, name in enumerate(curves)}
    traces = [go.Scatter(x=list(x), y=list(y), name=name, mode="lines+markers", line=dict(color=colours[name]))
              for name, (x, y) in curves.items()]
    traces += [go.Scatter(x=list(x), y=list(y), name=f"{name} (reported)", mode="lines+markers",
                          line=dict(color=colours[name], dash="dash", width=1), marker=dict(symbol="circle-open"))
               for name, (x, y) in (reported or {}).items()]
    fig = go.Figure(traces)
    fig.update_layout(height=360, margin=dict(l=5, r=5, t=10, b=5), xaxis_title=x_title, yaxis_title=y_title,
                      legend=dict(orientation="h", y=-0.25), font=dict(size=14))
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


def bound_scatter_figure(bound: Sequence[float], d2: Sequence[float], label: str = "images") -> go.Figure:
    """D2 of CAM/(h·w) against the bound ½(Z_y − Z_t): every point must lie on or above the diagonal."""
    bound, d2 = np.asarray(bound, dtype=float), np.asarray(d2, dtype=float)
    top = float(max(bound.max(initial=0), d2.max(initial=0))) * 1.05 or 1.0
    fig = go.Figure([go.Scatter(x=bound, y=d2, mode="markers", name=label, marker=dict(color="#2166ac", size=7)),
                     go.Scatter(x=[0, top], y=[0, top], mode="lines", name="D2 = bound",
                                line=dict(color="gray", dash="dash"))])
    fig.update_layout(height=380, margin=dict(l=5, r=5, t=10, b=5), xaxis_title="½ (Z_y(x) − Z_t(x))",
                      yaxis_title="D2 of CAM/(h·w)", legend=dict(orientation="h", y=-0.25), font=dict(size=14))
    return fig


#: The numbers of the PNG export's table, in this order (METRIC_DEFINITIONS keys).
PNG_METRICS = ("D1 range", "D2 range", "Kendall tau")


def _text_image(lines: Sequence[tuple[str, ...]], font_px: int = FONT_PX) -> Image.Image:
    """Lines of text, each a tuple of cells laid out in aligned columns (a one-cell line spans)."""
    font, pad = _font(font_px), 8
    table = [line for line in lines if len(line) > 1]
    columns = max((len(line) for line in table), default=1)
    widths = [max(_text_width(line[c], font) for line in table if c < len(line)) + 16 for c in range(columns)] \
        if table else [0]
    width = max([2 * pad + sum(widths)] + [2 * pad + _text_width(line[0], font) for line in lines if len(line) == 1])
    canvas = Image.new("RGB", (width, len(lines) * (font.size + 6) + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, line in enumerate(lines):
        left = pad
        for c, text in enumerate(line):
            draw.text((left, pad + r * (font.size + 6)), text, fill="black", font=font)
            left += widths[c] if len(line) > 1 else 0
    return canvas


def _stack(images: Sequence[Image.Image]) -> Image.Image:
    canvas = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    top = 0
    for image in images:
        canvas.paste(image, (0, top))
        top += image.height
    return canvas


def to_png(result: ExploreResult, index: int = 0, cell: int = 112) -> bytes:
    """A figure of image ``index``: the settings line; per model its clean, adversarial and
    amplified perturbation with the goal readout, then per explainer the true-class clean,
    adversarial and difference maps on one round symmetric RdBu scale per row; then the numbers:
    per model the bound line and per (model, explainer) the PNG_METRICS. PNG bytes."""
    rows = []
    for i, m in enumerate(result.models):
        summary = model_summary_image(result, i, index, cell)
        rows.append(Image.fromarray(summary))
        for name, ms in m.maps.items():
            panels = [ms.clean_up[index, 0], ms.adv_up[index, 0], ms.diff_up[index, 0]]
            limit = map_limit(result, name, index, 0, True, [i])
            rows.append(Image.fromarray(panels_image(
                [(f"{m.model} | {LABELS.get(name, name)} | class {result.class_names[int(m.y[index])]} (y)",
                  list(zip(("clean map", "adv map", "difference"), panels)), limit)], cell)))
    numbers = [(settings_line(result, ascii_only=True),)]
    numbers += [(f"{m.model}: {bound_readout(m, index, ascii_only=True)}",) for m in result.models]
    numbers.append(("model", "explainer", *PNG_METRICS))
    numbers += [(m.model, LABELS.get(name, name), *(f"{float(ms.metrics[k][index]):.4g}" for k in PNG_METRICS))
                for m in result.models for name, ms in m.maps.items()]
    buffer = io.BytesIO()
    _stack([_text_image(numbers[:1]), *rows, _text_image(numbers[1:])]).save(buffer, format="PNG")
    return buffer.getvalue()
