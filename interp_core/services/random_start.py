"""Why a random start matters: the authors' PGD (``paper-pgd``: 200 signed steps of 0.01 from the
clean image x) against the same attack started at a random point of the eps-ball (``pgd`` with the
same steps and step size, one seeded random start), on the same image, eps and model.

The Int networks' large-eps accuracy under the authors' attack does not survive a random start
(measured: authors' Int2 0.555 -> 0.030, Int 0.180 -> 0.010 on the 200-image paper subset at
eps 0.35). Measured on those 200 images: where the authors' attack leaves Int's label, 81% of the
pixels have a signed step that the [0, 1] box cancels (MNIST backgrounds are 0 and the gradient at x
points below 0), against 47% where it flips the label; so the iterate moves on few pixels and the
loss barely rises. The box is not the whole story: the same attack from x without the box lowers
Int2's accuracy to 0.035 but Int's only to 0.225, while a start inside the box (x + U[0, eps], no
sign noise) takes both to 0.01 or below. The start point x, not the attack's strength, is what fails.

``start_comparison`` runs both attacks through ``services.explore.explore`` (maps, Kendall tau,
goal readouts, the trajectory of iterates) and measures, at every iterate, how the signed step
sits on the box (``StepTrace``); ``side_by_side`` puts the two into one Explore result (one row per
start, for the map figures); ``trace_figure`` draws the loss and the blocked share per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import dataclasses

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from interp_core.services.explore import CleanMapCache, ExploreAttack, ExploreImages, ExploreResult, explore

#: The two starts compared: label -> (registered attack, its settings beyond eps, steps and step_size).
STARTS = {
    "authors' attack (start at x)": ("paper-pgd", {}),
    "random start": ("pgd", {"random_start": True, "restarts": 1}),
}
#: Slack when testing whether an iterate sits on the eps-ball's face (float rounding of x + delta - x).
_FACE_TOL = 1e-6
_COLOURS = ("#b2182b", "#2166ac")


@dataclass
class StepTrace:
    """The iterates x_0 .. x_S of one attack (x_0: its start point), per iterate and image, arrays
    (S+1, N): ``loss`` the cross-entropy CE(Z(x_k), y) that the attack ascends, ``pred`` the
    prediction; shares of the image's pixels: ``box_blocked`` whose signed step sign(grad) points
    out of the [0, 1] box where x_k sits on it (x_k = 0 and grad < 0, or x_k = 1 and grad > 0), so
    that clipping cancels the step; ``ball_blocked`` (the others) on the eps-ball's face with the
    step pointing out of it; ``zero_grad`` with a gradient of exactly 0; ``moved`` that change from
    x_k to x_{k+1} (0 at k = S, where no step follows)."""

    loss: np.ndarray
    pred: np.ndarray
    box_blocked: np.ndarray
    ball_blocked: np.ndarray
    zero_grad: np.ndarray
    moved: np.ndarray

    def step_mean(self, name: str) -> np.ndarray:
        """Mean of share ``name`` over the iterates a step is taken from (k = 0 .. S-1), (N,)."""
        return getattr(self, name)[:-1].mean(0)


@dataclass
class StartRun:
    """One of the two attacks: its Explore result (one model, CAM maps, trajectory) and its trace."""

    result: ExploreResult
    trace: StepTrace


def step_trace(model: torch.nn.Module, iterates: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               eps: float) -> StepTrace:
    """``StepTrace`` of an l-inf attack's iterates (S+1, N, C, H, W) around the clean images x
    (N, C, H, W) in [0, 1] with labels y (N,) and radius ``eps``: one gradient pass over all iterates."""
    s, n = iterates.shape[:2]
    flat = iterates.reshape(s * n, *iterates.shape[2:]).detach().requires_grad_(True)
    labels = y.repeat(s)
    with torch.enable_grad():
        logits = model(flat)
        loss = F.cross_entropy(logits, labels, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), flat)
    it, delta = iterates, iterates - x[None]
    grad = grad.view_as(it)
    box = ((it <= 0) & (grad < 0)) | ((it >= 1) & (grad > 0))
    face = ((delta >= eps - _FACE_TOL) & (grad > 0)) | ((delta <= -eps + _FACE_TOL) & (grad < 0))
    moved = torch.cat([it[1:] != it[:-1], torch.zeros_like(it[:1], dtype=torch.bool)])

    def share(mask: torch.Tensor) -> np.ndarray:
        return mask.flatten(2).float().mean(2).cpu().numpy()

    return StepTrace(loss=loss.detach().view(s, n).cpu().numpy(), pred=logits.argmax(1).view(s, n).cpu().numpy(),
                     box_blocked=share(box), ball_blocked=share(face & ~box), zero_grad=share(grad == 0),
                     moved=share(moved))


def start_comparison(model: torch.nn.Module, images: ExploreImages, eps: float, steps: int = 200,
                     step_size: float = 0.01, seed: int = 0, name: str = "model",
                     clean_maps: CleanMapCache | None = None) -> dict[str, StartRun]:
    """The authors' attack and the random-start one (``STARTS``, same eps, steps and step size; the
    random start seeded by ``seed``) on ``model`` for ``images`` (x (N, C, H, W) in [0, 1] with
    labels y (N,), which they need): per start label, the Explore result (CAM maps of y and t,
    Kendall tau, the goal "flip", the trajectory of iterates) and the ``StepTrace`` of its
    iterates. ``name`` names the model in the results; clean_maps is passed to ``explore``."""
    if images.y is None:
        raise ValueError("start_comparison needs the images' labels (images.y)")
    x, y = images.x, images.y
    runs = {}
    for label, (attack, extra) in STARTS.items():
        params = {"eps": eps, "steps": steps, "step_size": step_size,
                  **({**extra, "seed": seed} if extra else {})}
        result = explore({name: model}, images, ExploreAttack.registered(attack, params), ["cam"], "cam", clean_maps)
        iterates = torch.from_numpy(result.models[0].trajectory.x).to(x.device)
        runs[label] = StartRun(result, step_trace(model, iterates, x, y.to(x.device), eps))
    return runs


def side_by_side(runs: dict[str, StartRun]) -> ExploreResult:
    """The runs of ``start_comparison`` as one Explore result whose "models" are the starts (each
    named by its label), so that the map figures show them row by row on one colour scale."""
    first = next(iter(runs.values())).result
    return dataclasses.replace(first, models=[dataclasses.replace(run.result.models[0], model=label)
                                              for label, run in runs.items()])


def trace_figure(runs: dict[str, StartRun], index: int = 0) -> go.Figure:
    """Per attack step, for image ``index``: the cross-entropy (log scale, left) and the share of
    pixels whose step the [0, 1] box cancels (right), one colour per start."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("cross-entropy of the true class", "share of pixels: step cancelled by the box"))
    for (label, run), colour in zip(runs.items(), _COLOURS):
        steps = np.arange(run.trace.loss.shape[0])
        fig.add_trace(go.Scatter(x=steps, y=run.trace.loss[:, index], name=label, line_color=colour,
                                 legendgroup=label), row=1, col=1)
        fig.add_trace(go.Scatter(x=steps[:-1], y=run.trace.box_blocked[:-1, index], name=label, line_color=colour,
                                 legendgroup=label, showlegend=False), row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=5, r=5, t=30, b=5), legend=dict(orientation="h", y=-0.25),
                      font=dict(size=14))
    fig.update_xaxes(title_text="attack step")
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    return fig
