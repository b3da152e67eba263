"""Plotly figures for the app's results views (library side: no streamlit, no computation beyond
choosing a colour range). Maps use one colour scale per figure, symmetric around 0 on ColorBrewer
RdBu, a diverging scale that stays readable for the common colour-vision deficiencies.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_core.explore import ExploreResult, Trajectory
from interp_core.interpret import LABELS

DIVERGING = "RdBu"
PANEL_PX = 150


def display_image(x: np.ndarray, size: int = 140) -> np.ndarray:
    """(C, H, W) in [0, 1] -> uint8 (size, size[, 3]) enlarged by pixel repetition (no blur)."""
    img = (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    factor = max(size // img.shape[-1], 1)
    img = img.repeat(factor, axis=1).repeat(factor, axis=2)
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def _heatmap(z: np.ndarray, limit: float, show_scale: bool) -> go.Heatmap:
    return go.Heatmap(z=z[::-1], zmin=-limit, zmax=limit, zmid=0, colorscale=DIVERGING, showscale=show_scale,
                      colorbar=dict(thickness=10, len=0.9), hovertemplate="row %{y}, col %{x}: %{z:.4g}<extra></extra>")


def maps_figure(result: ExploreResult, explainer: str, index: int = 0, cls: int = 0,
                upsampled: bool = False) -> go.Figure:
    """One explainer: a row per model with clean map, adversarial map and their difference, all on
    ONE symmetric colour scale. ``cls`` 0 shows the true class y, 1 the attack class t."""
    rows = [m for m in result.models if explainer in m.maps]
    titles = []
    panels = []
    for m in rows:
        ms = m.maps[explainer]
        clean, adv, diff = ((ms.clean_up, ms.adv_up, ms.diff_up) if upsampled else (ms.clean, ms.adv, ms.diff))
        klass = result.class_names[int((m.y if cls == 0 else m.target)[index])]
        panels.append([clean[index, cls], adv[index, cls], diff[index, cls]])
        titles += [f"{m.model}<br>clean, class {klass}", "adversarial", "adv − clean"]
    limit = max(float(np.abs(p).max()) for row in panels for p in row) or 1.0
    fig = make_subplots(rows=len(rows), cols=3, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.12 / max(len(rows), 1))
    for r, row in enumerate(panels, start=1):
        for c, z in enumerate(row, start=1):
            fig.add_trace(_heatmap(z, limit, show_scale=(r == 1 and c == 3)), row=r, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", constrain="domain")
    fig.update_annotations(font_size=11)
    fig.update_layout(height=60 + PANEL_PX * len(rows) + 40, margin=dict(l=5, r=5, t=50, b=5),
                      title=dict(text=f"{LABELS.get(explainer, explainer)} — shared scale ±{limit:.3g}", font_size=14))
    return fig


def topk_figure(names: Sequence[str], clean_prob: np.ndarray, adv_prob: np.ndarray, k: int = 5) -> go.Figure:
    """Top-k class probabilities of the clean and adversarial image: prob vectors (K,)."""
    classes = sorted(set(np.argsort(-clean_prob)[:k]) | set(np.argsort(-adv_prob)[:k]), key=lambda c: -clean_prob[c])
    labels = [names[c] for c in classes]
    fig = go.Figure([go.Bar(y=labels, x=clean_prob[classes], name="clean", orientation="h", marker_color="#4d4d4d"),
                     go.Bar(y=labels, x=adv_prob[classes], name="adversarial", orientation="h", marker_color="#b2182b")])
    fig.update_layout(barmode="group", height=60 + 22 * len(classes), margin=dict(l=5, r=5, t=5, b=5),
                      xaxis=dict(range=[0, 1], title="probability"), yaxis=dict(autorange="reversed", type="category"),
                      legend=dict(orientation="h", y=-0.35))
    return fig


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
    fig.update_yaxes(title_text=f"{LABELS.get(trajectory.explainer, trajectory.explainer)} discrepancy", secondary_y=True)
    return fig


def step_maps_figure(trajectory: Trajectory, names: Sequence[str], y: int, t: int, step: int, index: int = 0) -> go.Figure:
    """The maps of y and t at one attack step beside the clean ones (step 0), one shared scale."""
    clean, now = trajectory.maps[0, index], trajectory.maps[step, index]
    panels = [clean[0], now[0], clean[1], now[1]]
    limit = max(float(np.abs(p).max()) for p in panels) or 1.0
    fig = make_subplots(rows=1, cols=4, horizontal_spacing=0.03, subplot_titles=[
        f"y={names[y]}, clean", f"y={names[y]}, step {step}", f"t={names[t]}, clean", f"t={names[t]}, step {step}"])
    for c, z in enumerate(panels, start=1):
        fig.add_trace(_heatmap(z, limit, show_scale=c == 4), row=1, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", constrain="domain")
    fig.update_annotations(font_size=11)
    fig.update_layout(height=PANEL_PX + 60, margin=dict(l=5, r=5, t=30, b=5))
    return fig


def curves_figure(curves: dict[str, tuple[Sequence[float], Sequence[float]]], x_title: str, y_title: str,
                  y_range: tuple[float, float] | None = None) -> go.Figure:
    """Line plot of named (x, y) curves, e.g. robust accuracy vs eps per model."""
    fig = go.Figure([go.Scatter(x=list(x), y=list(y), name=name, mode="lines+markers") for name, (x, y) in curves.items()])
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
                     go.Scatter(x=[0, top], y=[0, top], mode="lines", name="D2 = bound", line=dict(color="gray", dash="dash"))])
    fig.update_layout(height=380, margin=dict(l=5, r=5, t=10, b=5), xaxis_title="½ (Z_y(x) − Z_t(x))",
                      yaxis_title="D2 of CAM/(h·w)", legend=dict(orientation="h", y=-0.25))
    return fig
