"""Everything the app's Explore page shows for one attack on a few images and models, as data.

``explore(models, x, y, attack, explainers)`` attacks each model, explains clean and adversarial
images for the true class y and the attack's class t, and measures how far the maps moved
(PAPER.md section 4): 1-class and 2-class l1 discrepancies, raw and range-normalized, Kendall's
tau and the top-k intersection of the true-class maps, and the 2-class bound next to D2 on the
CAM/(h*w) scale. It also records the attack's trajectory (iterate, prediction and maps at every
step). The result holds numpy arrays only, so it can be cached, exported and rendered by any UI;
``to_csv``, ``to_json`` and ``to_npz`` are the exports (the PNG figure is ``figures.to_png``).

Which class is t: the attack's target for a targeted attack (by default the runner-up class of the
clean image, as the attacks choose it); otherwise the adversarial
prediction when the attack flipped it, else the highest-scoring wrong class at x' (the class
closest to winning). For an image without a label, y is the clean prediction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from interp_core.attacks import Attack, runner_up
from interp_core.interpret import LABELS, explain_classes, get_explainer, upsample_to_input
from interp_core.io import npz_bytes, rows_to_csv
from interp_core.metrics import best_other_class, discrepancy, kendall_tau, topk_intersection, two_class_bound

TOPK_CELLS = 8

#: Every number the Explore page shows, with its definition and the normalization it uses.
METRIC_DEFINITIONS: dict[str, str] = {
    "D1 raw": "1-class l1: ||I_y(x') - I_y(x)||_1 on the map's own grid, unnormalized",
    "D1 range": "1-class l1 divided by the clean map's range max I_y(x) - min I_y(x)",
    "D2 raw": "2-class l1: (||ΔI_y||_1 + ||ΔI_t||_1) / 2, unnormalized",
    "D2 range": "2-class l1 with each class term divided by its clean map's range (the paper's ISA number)",
    "Kendall tau": "Kendall's tau-b between clean and adversarial true-class maps (1 = same ranking)",
    f"top-{TOPK_CELLS} ∩": f"share of the {TOPK_CELLS} largest true-class cells that stay among the "
                          f"{TOPK_CELLS} largest",
}
BOUND_DEFINITION = (
    "D2 on CAM/(h·w) (maps that sum to the logits) is at least ½(Z_y(x) − Z_t(x)) for every x' on which "
    "t beats y (PAPER.md section 4): the floor no attack can get under."
)


@dataclass
class MapSet:
    """One explainer's maps for the classes (y, t): arrays (N, 2, h, w) on the explainer's grid
    and (N, 2, H, W) upsampled to the input; ``metrics`` maps a METRIC_DEFINITIONS key to (N,)."""

    explainer: str
    native_grid: bool
    clean: np.ndarray
    adv: np.ndarray
    clean_up: np.ndarray
    adv_up: np.ndarray
    metrics: dict[str, np.ndarray]

    @property
    def diff(self) -> np.ndarray:
        return self.adv - self.clean

    @property
    def diff_up(self) -> np.ndarray:
        return self.adv_up - self.clean_up


@dataclass
class Trajectory:
    """The attack step by step, S steps: iterates x (S+1, N, C, H, W) (row 0 = the start point),
    predictions (S+1, N), softmax probabilities (S+1, N, K), the maps of ``explainer`` for (y, t)
    (S+1, N, 2, h, w) and their raw 1-/2-class l1 discrepancy to the clean maps (S+1, N)."""

    explainer: str
    x: np.ndarray
    pred: np.ndarray
    prob: np.ndarray
    maps: np.ndarray
    d1: np.ndarray
    d2: np.ndarray


@dataclass
class ModelResult:
    """One model attacked on the images: x_adv (N, C, H, W), the perturbation amplified to fill
    [0, 1] (0.5 = unchanged), its l-inf / l2 size (N,), logits and probabilities (N, K), true and
    attack classes (N,), the bound ½(Z_y(x) − Z_t(x)) beside D2 of CAM/(h·w) (N,), whether t beats
    y at x' (the bound's premise), one MapSet per explainer, the trajectory and the time taken."""

    model: str
    x_adv: np.ndarray
    perturbation: np.ndarray
    linf: np.ndarray
    l2: np.ndarray
    clean_logits: np.ndarray
    adv_logits: np.ndarray
    clean_prob: np.ndarray
    adv_prob: np.ndarray
    y: np.ndarray
    target: np.ndarray
    bound: np.ndarray
    d2_cam_hw: np.ndarray
    bound_applies: np.ndarray
    maps: dict[str, MapSet]
    trajectory: Trajectory | None
    seconds: float

    @property
    def clean_pred(self) -> np.ndarray:
        return self.clean_logits.argmax(1)

    @property
    def adv_pred(self) -> np.ndarray:
        return self.adv_logits.argmax(1)


@dataclass
class ExploreResult:
    """Clean images x (N, C, H, W) in [0, 1], labels y (N,), class names, the attack's settings
    and one ModelResult per model, in the order given."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    attack: dict
    models: list[ModelResult] = field(default_factory=list)


def explore(models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor | None,
            attack: Attack, explainers: Sequence[str], attack_info: dict | None = None,
            target: torch.Tensor | None = None, class_names: Sequence[str] | None = None,
            trajectory_explainer: str | None = "cam") -> ExploreResult:
    """Attack every model on x and measure its interpretations (PAPER.md sections 3-5).

    models: name -> CAM-capable model (eval mode); x: (N, C, H, W) in [0, 1]; y: (N,) true labels,
    or None to use each model's clean prediction; attack: an ``interp_core.attacks.Attack`` (e.g.
    from ``build_attack``), whose callback records the trajectory; explainers: names from
    interpret.EXPLAINERS; target: (N,) attack targets, or None (a targeted attack then aims at the
    runner-up class); trajectory_explainer: the explainer whose maps are recorded at every attack
    step (None: no trajectory).
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if not explainers:
        raise ValueError("choose at least one explainer")
    x = x.detach()
    first = next(iter(models.values()))
    num_classes = first.head.out_features
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    result = ExploreResult(x=x.cpu().numpy(), y=(y.cpu().numpy() if y is not None else np.full(len(x), -1)),
                           class_names=names, attack=dict(attack_info or {}))
    for name, model in models.items():
        result.models.append(_explore_model(name, model, x, y, attack, explainers, target, trajectory_explainer))
    return result


def _explore_model(name, model, x, y, attack: Attack, explainers, target, trajectory_explainer) -> ModelResult:
    start = time.perf_counter()
    with torch.no_grad():
        clean_logits = model(x)
    y = clean_logits.argmax(1) if y is None else y.to(x.device)
    if attack.targeted and target is None:
        target = runner_up(model, x, y)
    steps: list[torch.Tensor] = []
    x_adv = attack(model, x, y, target, callback=lambda step, xs: steps.append(xs.detach().clone())).detach()
    with torch.no_grad():
        adv_logits = model(x_adv)
    # the class the attack pushed toward: the best wrong class at x' (its prediction if flipped)
    t = target.to(x.device) if target is not None else best_other_class(adv_logits, y).indices
    both = torch.cat([x, x_adv])
    classes = torch.stack([y, t], 1).repeat(2, 1)  # (2N, 2): explain y and t on clean and adv
    maps = {e: _map_set(e, model, both, classes, x.shape[-2:]) for e in explainers}
    with torch.no_grad():
        cams = explain_classes(get_explainer("cam"), model, both, classes)
    h, w = cams.shape[-2:]
    n = len(x)
    cam_hw = cams / (h * w)
    d2_cam_hw = discrepancy(cam_hw[:n], cam_hw[n:], *_yt(n, x.device), measure="2class")
    delta = x_adv - x
    linf = delta.abs().flatten(1).amax(1)
    scale = linf.clamp_min(1e-12).view(-1, 1, 1, 1)
    trajectory = (_trajectory(trajectory_explainer, model, x, y, t, steps, maps.get(trajectory_explainer))
                  if trajectory_explainer and steps else None)
    return ModelResult(
        model=name, x_adv=x_adv.cpu().numpy(), perturbation=(0.5 + 0.5 * delta / scale).cpu().numpy(),
        linf=linf.cpu().numpy(), l2=delta.flatten(1).norm(dim=1).cpu().numpy(),
        clean_logits=clean_logits.cpu().numpy(), adv_logits=adv_logits.cpu().numpy(),
        clean_prob=clean_logits.softmax(1).cpu().numpy(), adv_prob=adv_logits.softmax(1).cpu().numpy(),
        y=y.cpu().numpy(), target=t.cpu().numpy(), bound=two_class_bound(clean_logits, y, t).cpu().numpy(),
        d2_cam_hw=d2_cam_hw.cpu().numpy(),
        bound_applies=(adv_logits.gather(1, t[:, None]) > adv_logits.gather(1, y[:, None])).squeeze(1).cpu().numpy(),
        maps=maps, trajectory=trajectory, seconds=time.perf_counter() - start,
    )


def _yt(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of y and t in the stacked (y, t) maps, for metrics.discrepancy."""
    return torch.zeros(n, dtype=torch.long, device=device), torch.ones(n, dtype=torch.long, device=device)


def _map_set(explainer_name: str, model, both: torch.Tensor, classes: torch.Tensor, size) -> MapSet:
    """Maps of classes (y, t) on the clean and adversarial images, and their agreement numbers."""
    explainer = get_explainer(explainer_name)
    maps = explain_classes(explainer, model, both, classes)
    n = len(both) // 2
    clean, adv = maps[:n], maps[n:]
    y_idx, t_idx = _yt(n, both.device)
    metrics = {
        "D1 raw": discrepancy(clean, adv, y_idx, measure="1class"),
        "D1 range": discrepancy(clean, adv, y_idx, measure="1class", normalization="range"),
        "D2 raw": discrepancy(clean, adv, y_idx, t_idx, measure="2class"),
        "D2 range": discrepancy(clean, adv, y_idx, t_idx, measure="2class", normalization="range"),
        "Kendall tau": kendall_tau(clean[:, :1], adv[:, :1]),
        f"top-{TOPK_CELLS} ∩": topk_intersection(clean[:, :1], adv[:, :1], k=min(TOPK_CELLS, clean[0, 0].numel())),
    }
    upsampled = upsample_to_input(maps, tuple(size))
    return MapSet(explainer=explainer_name, native_grid=explainer.native_grid,
                  clean=clean.cpu().numpy(), adv=adv.cpu().numpy(),
                  clean_up=upsampled[:n].cpu().numpy(), adv_up=upsampled[n:].cpu().numpy(),
                  metrics={k: v.cpu().numpy() for k, v in metrics.items()})


def _trajectory(explainer_name: str, model, x, y, t, steps: list[torch.Tensor],
                clean_maps: MapSet | None) -> Trajectory:
    """Predictions and (y, t) maps at every recorded iterate, explained as one batch."""
    xs = torch.stack(steps)  # (S+1, N, C, H, W)
    s, n = xs.shape[:2]
    flat = xs.reshape(s * n, *xs.shape[2:])
    with torch.no_grad():
        logits = model(flat)
    classes = torch.stack([y, t], 1).repeat(s, 1)
    explainer = get_explainer(explainer_name)
    maps = explain_classes(explainer, model, flat, classes)
    clean = (torch.from_numpy(clean_maps.clean).to(x.device) if clean_maps is not None
             else explain_classes(explainer, model, x, torch.stack([y, t], 1)))
    clean_rep = clean.repeat(s, 1, 1, 1)
    y_idx, t_idx = _yt(s * n, x.device)
    d1 = discrepancy(clean_rep, maps, y_idx, measure="1class")
    d2 = discrepancy(clean_rep, maps, y_idx, t_idx, measure="2class")
    return Trajectory(explainer=explainer_name, x=xs.cpu().numpy(), pred=logits.argmax(1).view(s, n).cpu().numpy(),
                      prob=logits.softmax(1).view(s, n, -1).cpu().numpy(),
                      maps=maps.view(s, n, *maps.shape[1:]).cpu().numpy(),
                      d1=d1.view(s, n).cpu().numpy(), d2=d2.view(s, n).cpu().numpy())


# ----------------------------------------------------------------------------------------------
# Exports


def metrics_rows(result: ExploreResult) -> list[dict]:
    """One flat row per (image, model, explainer): predictions, perturbation size, every metric,
    and the CAM/(h·w) bound beside D2."""
    rows = []
    for m in result.models:
        for i in range(len(result.x)):
            base = {
                "image": i, "model": m.model, "attack": result.attack.get("name", ""),
                "true": result.class_names[int(m.y[i])], "clean_pred": result.class_names[int(m.clean_pred[i])],
                "adv_pred": result.class_names[int(m.adv_pred[i])], "t": result.class_names[int(m.target[i])],
                "linf": float(m.linf[i]), "l2": float(m.l2[i]),
                "D2 CAM/(h·w)": float(m.d2_cam_hw[i]), "bound ½(Z_y−Z_t)": float(m.bound[i]),
                "t beats y at x'": bool(m.bound_applies[i]),
            }
            for name, ms in m.maps.items():
                rows.append({**base, "explainer": name, **{k: float(v[i]) for k, v in ms.metrics.items()}})
    return rows


def to_csv(result: ExploreResult) -> str:
    """The metrics rows as CSV text."""
    return rows_to_csv(metrics_rows(result))


def to_json(result: ExploreResult) -> str:
    """Attack settings, metric definitions and the metrics rows as JSON text."""
    return json.dumps({"attack": result.attack, "definitions": {**METRIC_DEFINITIONS, "bound": BOUND_DEFINITION},
                       "rows": metrics_rows(result)}, indent=1, default=float)


def to_npz(result: ExploreResult) -> bytes:
    """x, y and per model x_adv, logits and every explainer's (y, t) maps, as .npz bytes."""
    arrays = {"x": result.x, "y": result.y}
    for m in result.models:
        arrays |= {f"{m.model}/x_adv": m.x_adv, f"{m.model}/clean_logits": m.clean_logits,
                   f"{m.model}/adv_logits": m.adv_logits, f"{m.model}/target": m.target}
        for name, ms in m.maps.items():
            arrays |= {f"{m.model}/{name}/clean": ms.clean, f"{m.model}/{name}/adv": ms.adv}
        if m.trajectory is not None:
            arrays |= {f"{m.model}/trajectory/x": m.trajectory.x,
                       f"{m.model}/trajectory/{m.trajectory.explainer}": m.trajectory.maps}
    return npz_bytes(**arrays)
