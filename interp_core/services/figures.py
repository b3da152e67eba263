"""Figures for the app's results views (library side: no streamlit, no computation beyond choosing a
colour range). Interpretation maps are drawn as images: one symmetric colour scale per figure on
ColorBrewer RdBu, a diverging scale that stays readable for the common colour-vision deficiencies,
with pixels enlarged without blur (fast to build and to send, unlike a heatmap per panel). Curves
and bars are plotly figures.
"""

from __future__ import annotations

import functools
import io
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots

from interp_core.interpret import LABELS
from interp_core.services.explore import ExploreResult, Trajectory


PANEL_PX = 150


# Colour-blind-safe diverging scale (ColorBrewer RdBu, 7 classes), low = red, high = blue.
_RDBU = np.array([[178, 24, 43], [239, 138, 98], [253, 219, 199], [247, 247, 247],
                  [209, 229, 240], [103, 169, 207], [33, 102, 172]], dtype=np.float32)


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


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def panels_image(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]], float | None]],
                 cell: int = PANEL_PX) -> np.ndarray:
    """Rows of titled panels drawn into one RGB image (H, W, 3) uint8.

    rows: (title, [(caption, panel)], limit); a panel is an RGB image (h, w, 3) uint8 or a signed
    map (h, w) drawn on RdBu with the row's symmetric ``limit`` (one scale per row), and a row with
    a limit ends in a colour bar labelled -limit, 0, +limit. Pixels are enlarged without blur. Text
    uses PIL's built-in font, which has no Greek letters or arrows: keep it ASCII.
    """
    font, small = _font(14), _font(12)
    pad, title_h, caption_h, bar_w = 8, 22, 18, 60
    columns = max(len(panels) for _, panels, _ in rows)
    width = pad + columns * (cell + pad) + bar_w
    canvas = Image.new("RGB", (width, len(rows) * (title_h + caption_h + cell + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (title, panels, limit) in enumerate(rows):
        top = pad + r * (title_h + caption_h + cell + pad)
        draw.text((pad, top), title, fill="black", font=font)
        for c, (caption, panel) in enumerate(panels):
            left = pad + c * (cell + pad)
            rgb = panel if panel.ndim == 3 else diverging_rgb(panel, limit or 1.0)
            draw.text((left, top + title_h), caption, fill="dimgray", font=small)
            canvas.paste(Image.fromarray(rgb).resize((cell, cell), Image.NEAREST), (left, top + title_h + caption_h))
        if limit is not None:
            left, bar_top = pad + len(panels) * (cell + pad), top + title_h + caption_h
            ramp = np.linspace(limit, -limit, cell)[:, None].repeat(12, axis=1)
            canvas.paste(Image.fromarray(diverging_rgb(ramp, limit)), (left, bar_top))
            for frac, label in ((0.0, f"{limit:+.3g}"), (0.5, "0"), (1.0, f"{-limit:+.3g}")):
                draw.text((left + 15, bar_top + frac * (cell - 12)), label, fill="black", font=small)
    return np.asarray(canvas)


def maps_image(result: ExploreResult, explainer: str, model_index: int = 0, index: int = 0, cls: int = 0,
               upsampled: bool = False, cell: int = PANEL_PX) -> np.ndarray:
    """One explainer on one model: clean map, adversarial map and their difference on ONE symmetric
    colour scale, with its colour bar. ``cls`` 0 shows the true class y, 1 the attack class t."""
    m = result.models[model_index]
    ms = m.maps[explainer]
    clean, adv, diff = (ms.clean_up, ms.adv_up, ms.diff_up) if upsampled else (ms.clean, ms.adv, ms.diff)
    panels = [clean[index, cls], adv[index, cls], diff[index, cls]]
    limit = max(float(np.abs(p).max()) for p in panels) or 1.0
    klass = result.class_names[int((m.y if cls == 0 else m.target)[index])]
    grid = "x".join(str(v) for v in panels[0].shape)
    title = f"{LABELS.get(explainer, explainer)} | class {klass} ({'y' if cls == 0 else 't'}) | {grid} grid"
    return panels_image([(title, list(zip(("clean", "adversarial", "adv - clean"), panels)), limit)], cell)


def step_image(trajectory: Trajectory, names: Sequence[str], y: int, t: int, step: int, index: int = 0,
               cell: int = 120) -> np.ndarray:
    """The attack at one step: the iterate with its prediction, then the maps of y and t at that
    step beside the clean ones (step 0), on one shared scale."""
    clean, now = trajectory.maps[0, index], trajectory.maps[step, index]
    pred, prob = int(trajectory.pred[step, index]), float(trajectory.prob[step, index].max())
    panels = [(f"x -> {names[pred]} ({prob:.0%})", image_rgb(trajectory.x[step, index])),
              (f"y={names[y]} clean", clean[0]), (f"y={names[y]} step {step}", now[0]),
              (f"t={names[t]} clean", clean[1]), (f"t={names[t]} step {step}", now[1])]
    limit = max(float(np.abs(p).max()) for _, p in panels[1:]) or 1.0
    title = f"step {step} | {LABELS.get(trajectory.explainer, trajectory.explainer)} maps"
    return panels_image([(title, panels, limit)], cell)


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
                      legend=dict(orientation="h", y=-0.3))
    fig.update_yaxes(title_text="probability", range=[0, 1], secondary_y=False)
    fig.update_yaxes(title_text=f"{LABELS.get(trajectory.explainer, trajectory.explainer)} discrepancy",
                     secondary_y=True)
    return fig


def curves_figure(curves: dict[str, tuple[Sequence[float], Sequence[float]]], x_title: str, y_title: str,
                  y_range: tuple[float, float] | None = None) -> go.Figure:
    """Line plot of named (x, y) curves, e.g. robust accuracy vs eps per model."""
    fig = go.Figure([go.Scatter(x=list(x), y=list(y), name=name, mode="lines+markers")
                     for name, (x, y) in curves.items()])
    fig.update_layout(height=360, margin=dict(l=5, r=5, t=10, b=5), xaxis_title=x_title, yaxis_title=y_title,
                      legend=dict(orientation="h", y=-0.25))
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
                      yaxis_title="D2 of CAM/(h·w)", legend=dict(orientation="h", y=-0.25))
    return fig


def to_png(result: ExploreResult, index: int = 0, cell: int = 112) -> bytes:
    """A figure of image ``index``: per model one row of clean, adversarial and amplified
    perturbation, then per explainer the true-class clean, adversarial and difference maps on one
    shared symmetric RdBu scale per row. PNG bytes."""
    rows = []
    for m in result.models:
        rows.append((m.model, [("clean", image_rgb(result.x[index])), ("adversarial", image_rgb(m.x_adv[index])),
                               ("perturbation", image_rgb(m.perturbation[index]))], None))
        for name, ms in m.maps.items():
            panels = [ms.clean_up[index, 0], ms.adv_up[index, 0], ms.diff_up[index, 0]]
            limit = max(float(np.abs(p).max()) for p in panels) or 1.0
            rows.append((f"{LABELS.get(name, name)} | D2 range {ms.metrics['D2 range'][index]:.3f}",
                         list(zip(("clean map", "adv map", "difference"), panels)), limit))
    buffer = io.BytesIO()
    Image.fromarray(panels_image(rows, cell)).save(buffer, format="PNG")
    return buffer.getvalue()
