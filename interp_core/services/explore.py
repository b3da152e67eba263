"""Everything the app's Explore page shows for one attack on a few images and models, as data.

``explore(models, images, attack, explainers)`` attacks each model, explains clean and adversarial
images for the true class y and the attack's class t, and measures how far the maps moved
(docs/method.md#discrepancies): 1-class and 2-class l1 discrepancies, raw and range-normalized, Kendall's
tau and the top-k intersection of the true-class maps, and the 2-class bound next to D2 on the
CAM/(h*w) scale. It also records the attack's trajectory (iterate, prediction and maps at every
step). The result holds numpy arrays only, so it can be cached, exported and rendered by any UI;
``to_csv``, ``to_json`` and ``to_npz`` are the exports (the PNG figure is ``figures.to_png``).
The clean images' maps do not depend on the attack: a ``CleanMapCache`` passed to ``explore``
keeps them, so a second attack on the same image and model explains only the adversarial image.

Truthful readouts: each model's result says whether the attack reached its goal (``AttackSpec.goal``:
flip the label, reach the target, or keep the label for AAI), judged against the model's clean
prediction: an image the model already misclassifies is said to be so, and an attack that leaves
its wrong prediction as it was failed (``goal_readout``). Per image it keeps the facts the goal is
made of as flags: misclassified before the attack, label changed, target reached. The bound line
gives the relation that actually holds and whether the bound applies (``bound_readout``), and a
perturbation too small to amplify is reported as none rather than magnified by ~1/0. The
minimum-eps search's eps is an upper bound on the minimum (``eps_found_readout``).
``check_correct`` refuses images the model misclassifies, for attacks that need a correct one (ISA).

Which class is t: the attack's target for a targeted attack (by default the runner-up class of the
clean image, as the attacks choose it); otherwise the adversarial
prediction when the attack flipped it, else the highest-scoring wrong class at x' (the class
closest to winning). For an image without a label, y is the clean prediction.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from interp_core.attacks import ATTACKS, GOALS, Attack, build_attack, runner_up
from interp_core.datasets import DATASETS
from interp_core.interpret import Explainer, explain_classes, get_explainer, upsample_to_input
from interp_core.io import npz_bytes, rows_to_csv
from interp_core.metrics import best_other_class, discrepancy, kendall_tau, topk_intersection, two_class_bound

TOPK_CELLS = 8
#: Below this ||x' - x||_inf the attack left the image as it was: no perturbation to amplify.
PERTURBATION_FLOOR = 1e-6
#: The label of the minimum-eps search's result: the eps a search found bounds the minimum from above.
EPS_FOUND_LABEL = "ε found (an upper bound on the minimum): ‖x′ − x‖∞"

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
    "t beats y (docs/method.md#bound): the floor no attack can get under."
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
    [0, 1] (0.5 = unchanged; all 0.5 below PERTURBATION_FLOOR), its l-inf / l2 size (N,), logits
    and probabilities (N, K), true and attack classes (N,), the bound ½(Z_y(x) − Z_t(x)) beside D2
    and D1 of CAM/(h·w) (N,), whether t beats y at x' (the bound's premise), per image (N,) bool:
    whether the clean prediction was already wrong (``misclassified``), whether the attack changed
    the prediction (``label_changed``), whether t is the adversarial prediction of a targeted
    attack (``target_reached``; False for an untargeted one) and whether the attack reached its
    goal (``goal_reached``: for "flip" a changed, wrong prediction; for "reach" t made the
    prediction, not t already the clean one; for "keep" the clean prediction kept), one MapSet per
    explainer, the trajectory and the time taken; for ISA with a searched gamma, the gamma it found
    (N,) (NaN: none reached t), else None."""

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
    d1_cam_hw: np.ndarray
    bound_applies: np.ndarray
    misclassified: np.ndarray
    label_changed: np.ndarray
    target_reached: np.ndarray
    goal_reached: np.ndarray
    maps: dict[str, MapSet]
    trajectory: Trajectory | None
    seconds: float
    found_gamma: np.ndarray | None = None

    @property
    def clean_pred(self) -> np.ndarray:
        return self.clean_logits.argmax(1)

    @property
    def adv_pred(self) -> np.ndarray:
        return self.adv_logits.argmax(1)

    @property
    def magnification(self) -> np.ndarray:
        """How much the perturbation image amplifies δ, 0.5 / ||δ||_inf (N,); NaN where there is
        no perturbation (||δ||_inf < PERTURBATION_FLOOR)."""
        linf = self.linf.astype(np.float64)
        return np.where(linf >= PERTURBATION_FLOOR, 0.5 / np.maximum(linf, PERTURBATION_FLOOR), np.nan)


@dataclass
class ExploreResult:
    """Clean images x (N, C, H, W) in [0, 1], labels y (N,), class names, the attack's settings
    (``attack_settings``, with "name" and "target"), its goal (GOALS), one ModelResult per model in
    the order given, the dataset's name and each image's id in its gallery (N,) for the exports."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    attack: dict
    models: list[ModelResult] = field(default_factory=list)
    goal: str = "flip"
    dataset: str = ""
    image_ids: list = field(default_factory=list)

    def image_id(self, index: int):
        """The gallery number of image ``index`` (its batch position when none was given)."""
        return self.image_ids[index] if index < len(self.image_ids) else index


def attack_settings(name: str, params: dict) -> dict:
    """The settings attack ``name`` runs with: the registry's defaults overridden by ``params``,
    where a None (derived) setting such as PGD's step_size is read from the built attack (2.5 eps /
    steps). Raises ValueError for unknown or invalid settings, as ``build_attack`` does."""
    attack = build_attack(name, **params)
    budget = ATTACKS[name].budget
    settings = {budget: params[budget]} if budget in params else {}  # the budget first, as people read it
    settings.update({**ATTACKS[name].defaults, **params})
    return {k: getattr(attack, k, v) if v is None else v for k, v in settings.items()}


class MisclassifiedImage(ValueError):
    """The model gets the clean image wrong, so an attack that needs a correct image refuses it;
    ``model``, ``true`` and ``pred`` (class names) and ``prob`` (the prediction's softmax) say how."""

    def __init__(self, model: str, true: str, pred: str, prob: float):
        self.model, self.true, self.pred, self.prob = model, true, pred, prob
        super().__init__(f"{model} classifies this image (true class {true}) as {pred} ({prob:.0%}); this attack "
                         "needs an image the model classifies correctly, as in the paper: choose another image")


def check_correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, class_names: Sequence[str],
                  name: str = "the model") -> None:
    """Raise MisclassifiedImage for the first image of x (N, C, H, W) in [0, 1] that ``model``
    does not classify as its label y (N,); return None when it gets every image right."""
    with torch.no_grad():
        prob = model(x).softmax(1)
    wrong = (prob.argmax(1) != y.to(prob.device)).nonzero().squeeze(1)
    if len(wrong):
        i = int(wrong[0])
        pred = int(prob[i].argmax())
        raise MisclassifiedImage(name, class_names[int(y[i])], class_names[pred], float(prob[i, pred]))


class CleanMapCache:
    """Clean images' maps kept across attacks, for models whose weights do not change (the app's
    cached models). An entry is one image's maps (M, h, w), keyed by the model object (held
    weakly: a model dropped elsewhere takes its maps along), the image's bytes, the explainer
    with its settings (its repr) and the M classes explained; at most ``max_entries`` per model,
    the least recently used dropped first. Safe for threads (the app's sessions share one).
    ``hits`` and ``misses`` count the images found and computed."""

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._store: weakref.WeakKeyDictionary[torch.nn.Module, OrderedDict] = weakref.WeakKeyDictionary()

    def maps(self, explainer: Explainer, model: torch.nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """``explain_classes(explainer, model, x, classes)``: x (N, C, H, W), classes (N, M) -> the
        detached maps (N, M, h, w); only the images without an entry are explained (in one call)."""
        keys = [(hashlib.sha1(image.cpu().numpy().tobytes()).hexdigest(), tuple(image.shape), repr(explainer),
                 tuple(c.tolist())) for image, c in zip(x, classes)]
        with self._lock:
            store = self._store.setdefault(model, OrderedDict())
            found = {i: store[key] for i, key in enumerate(keys) if key in store}
            for i in found:
                store.move_to_end(keys[i])
        missing = [i for i in range(len(x)) if i not in found]
        if missing:
            rows = torch.tensor(missing, device=x.device)
            found |= dict(zip(missing, explain_classes(explainer, model, x[rows], classes[rows])))
            with self._lock:
                for i in missing:
                    store[keys[i]] = found[i]
                while len(store) > self.max_entries:
                    store.popitem(last=False)
        with self._lock:
            self.hits, self.misses = self.hits + len(x) - len(missing), self.misses + len(missing)
        return torch.stack([found[i] for i in range(len(x))])


@dataclass(frozen=True)
class ExploreImages:
    """The images to explore: x (N, C, H, W) in [0, 1]; y (N,) true labels, or None to use each
    model's clean prediction; the class names (None: the class numbers); the dataset's name and
    each image's id in its gallery (N,; None: its batch position), for the exports."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    class_names: Sequence[str] | None = None
    dataset: str = ""
    image_ids: Sequence | None = None

    def __post_init__(self):
        if self.x.dim() != 4:
            raise ValueError(f"x must be (N, C, H, W), got shape {tuple(self.x.shape)}")
        if self.y is not None and self.y.shape != (len(self.x),):
            raise ValueError(f"y must hold one label per image, shape ({len(self.x)},), got {tuple(self.y.shape)}")
        if self.image_ids is not None and len(self.image_ids) != len(self.x):
            raise ValueError(f"image_ids must name the {len(self.x)} images, got {len(self.image_ids)}")


@dataclass(frozen=True)
class ExploreAttack:
    """The attack to run and how to judge it: an ``interp_core.attacks.Attack``, the settings the
    result shows (``info``, with "name"), the goal (one of GOALS; None: "reach" for a targeted
    attack, else "flip"), whether it refuses images a model misclassifies (``require_correct``:
    ``MisclassifiedImage`` before attacking) and its targets (N,) (None: a targeted attack aims at
    the runner-up class). ``registered`` builds one from the attack registry, which knows the
    goal and whether the attack needs a correct image."""

    attack: Attack
    info: dict = field(default_factory=dict)
    goal: str | None = None
    require_correct: bool = False
    target: torch.Tensor | None = None

    def __post_init__(self):
        if self.goal is not None and self.goal not in GOALS:
            raise ValueError(f"goal must be one of {GOALS}, got {self.goal!r}")

    @classmethod
    def registered(cls, name: str, params: dict, target: torch.Tensor | None = None) -> "ExploreAttack":
        """Attack ``name`` of ``ATTACKS`` with ``params`` (ValueError for unknown or invalid
        ones): its goal and correct-image rule from the registry, ``info`` the settings asked for
        (derived ones, such as PGD's step size, read from the built attack; not ISA's gamma while
        it is searched) and the targets' class numbers (None without targets)."""
        settings = {k: v for k, v in attack_settings(name, params).items() if k in params}
        info = {"name": name, **settings, "target": None if target is None else [int(t) for t in target]}
        return cls(build_attack(name, **params), info, ATTACKS[name].goal, ATTACKS[name].needs_correct, target)

    @property
    def judged_by(self) -> str:
        """The goal the attack is judged by (``goal``, else by whether it is targeted)."""
        return self.goal or ("reach" if self.attack.targeted else "flip")


def explore(models: dict[str, torch.nn.Module], images: ExploreImages, attack: ExploreAttack,
            explainers: Sequence[str], trajectory_explainer: str | None = "cam",
            clean_maps: CleanMapCache | None = None) -> ExploreResult:
    """Attack every model on ``images`` and measure its interpretations (docs/method.md#discrepancies).

    models: name -> CAM-capable model (eval mode); attack: what to run, its targets and goal
    (``ExploreAttack``; its attack's callback records the trajectory); explainers: names from
    interpret.EXPLAINERS; trajectory_explainer: the explainer whose maps are recorded at every
    attack step (None: no trajectory); clean_maps: where the clean images' maps are kept across
    calls (None: a cache for this call only).
    """
    if not explainers:
        raise ValueError("choose at least one explainer")
    x, y = images.x.detach(), images.y
    goal = attack.judged_by
    clean_maps = clean_maps or CleanMapCache()
    first = next(iter(models.values()))
    num_classes = first.head.out_features
    names = list(images.class_names) if images.class_names else [str(c) for c in range(num_classes)]
    result = ExploreResult(x=x.cpu().numpy(), y=(y.cpu().numpy() if y is not None else np.full(len(x), -1)),
                           class_names=names, attack=dict(attack.info), goal=goal, dataset=images.dataset,
                           image_ids=list(images.image_ids) if images.image_ids is not None else [])
    for name, model in models.items():
        if attack.require_correct and y is not None:
            check_correct(model, x, y, names, name)
        result.models.append(_explore_model(name, model, x, y, attack.attack, explainers, attack.target,
                                            trajectory_explainer, goal, clean_maps))
    return result


def _explore_model(name, model, x, y, attack: Attack, explainers, target, trajectory_explainer,
                   goal, clean_maps: CleanMapCache) -> ModelResult:
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
    classes = torch.stack([y, t], 1)  # (N, 2): explain y and t
    maps = {e: _map_set(get_explainer(e), model, x, x_adv, classes, clean_maps) for e in explainers}
    if "cam" in maps:  # the bound's CAM discrepancies reuse the CAM panel's maps
        clean_cam, adv_cam = (torch.from_numpy(a).to(x.device) for a in (maps["cam"].clean, maps["cam"].adv))
    else:
        cam = get_explainer("cam")
        clean_cam, adv_cam = clean_maps.maps(cam, model, x, classes), explain_classes(cam, model, x_adv, classes)
    cells = clean_cam[0, 0].numel()  # h * w
    y_idx, t_idx = _yt(len(x), x.device)
    d2_cam_hw = discrepancy(clean_cam / cells, adv_cam / cells, y_idx, t_idx, measure="2class")
    d1_cam_hw = discrepancy(clean_cam / cells, adv_cam / cells, y_idx, measure="1class")
    delta = x_adv - x
    linf = delta.abs().flatten(1).amax(1)
    # below the floor there is nothing to amplify: mid-grey, not noise magnified by ~1/0
    scale = torch.where(linf >= PERTURBATION_FLOOR, linf, torch.inf).view(-1, 1, 1, 1)
    clean_pred, adv_pred = clean_logits.argmax(1), adv_logits.argmax(1)
    changed = adv_pred != clean_pred
    target_reached = (adv_pred == t) & (goal == "reach")
    reached = {"flip": changed & (adv_pred != y), "reach": target_reached & (clean_pred != t),
               "keep": ~changed}[goal]
    trajectory = (_trajectory(trajectory_explainer, model, x, y, t, steps, maps.get(trajectory_explainer))
                  if trajectory_explainer and steps else None)
    return ModelResult(
        model=name, x_adv=x_adv.cpu().numpy(), perturbation=(0.5 + 0.5 * delta / scale).cpu().numpy(),
        linf=linf.cpu().numpy(), l2=delta.flatten(1).norm(dim=1).cpu().numpy(),
        clean_logits=clean_logits.cpu().numpy(), adv_logits=adv_logits.cpu().numpy(),
        clean_prob=clean_logits.softmax(1).cpu().numpy(), adv_prob=adv_logits.softmax(1).cpu().numpy(),
        y=y.cpu().numpy(), target=t.cpu().numpy(), bound=two_class_bound(clean_logits, y, t).cpu().numpy(),
        d2_cam_hw=d2_cam_hw.cpu().numpy(), d1_cam_hw=d1_cam_hw.cpu().numpy(),
        bound_applies=(adv_logits.gather(1, t[:, None]) > adv_logits.gather(1, y[:, None])).squeeze(1).cpu().numpy(),
        misclassified=(clean_pred != y).cpu().numpy(), label_changed=changed.cpu().numpy(),
        target_reached=target_reached.cpu().numpy(), goal_reached=reached.cpu().numpy(), maps=maps,
        trajectory=trajectory, seconds=time.perf_counter() - start,
        found_gamma=None if getattr(attack, "found_gamma", None) is None else attack.found_gamma.cpu().numpy(),
    )


def _yt(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of y and t in the stacked (y, t) maps, for metrics.discrepancy."""
    return torch.zeros(n, dtype=torch.long, device=device), torch.ones(n, dtype=torch.long, device=device)


def _map_set(explainer: Explainer, model, x: torch.Tensor, x_adv: torch.Tensor, classes: torch.Tensor,
             clean_maps: CleanMapCache) -> MapSet:
    """Maps of classes (N, 2) = (y, t) on the clean images x (kept in ``clean_maps``) and the
    adversarial images x_adv (N, C, H, W), and their agreement numbers."""
    clean = clean_maps.maps(explainer, model, x, classes)
    adv = explain_classes(explainer, model, x_adv, classes)
    n = len(x)
    y_idx, t_idx = _yt(n, x.device)
    metrics = {
        "D1 raw": discrepancy(clean, adv, y_idx, measure="1class"),
        "D1 range": discrepancy(clean, adv, y_idx, measure="1class", normalization="range"),
        "D2 raw": discrepancy(clean, adv, y_idx, t_idx, measure="2class"),
        "D2 range": discrepancy(clean, adv, y_idx, t_idx, measure="2class", normalization="range"),
        "Kendall tau": kendall_tau(clean[:, :1], adv[:, :1]),
        f"top-{TOPK_CELLS} ∩": topk_intersection(clean[:, :1], adv[:, :1], k=min(TOPK_CELLS, clean[0, 0].numel())),
    }
    size = tuple(x.shape[-2:])
    return MapSet(explainer=explainer.name, native_grid=explainer.native_grid,
                  clean=clean.cpu().numpy(), adv=adv.cpu().numpy(),
                  clean_up=upsample_to_input(clean, size).cpu().numpy(), adv_up=upsample_to_input(adv, size).cpu().numpy(),
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
# Readouts: the sentences every view and export shows, so they say the same true thing


def _text(text: str, ascii_only: bool) -> str:
    """``text`` with its Greek letters, primes and relation signs spelled in ASCII when asked
    (the figures' PIL font has none of them)."""
    if not ascii_only:
        return text
    for a, b in (("≥", ">="), ("≤", "<="), ("½", "1/2"), ("−", "-"), ("′", "'"), ("·", "*"), ("→", "->"),
                 ("δ", "delta"), ("ε", "eps"), ("∞", "inf"), ("×", "x")):
        text = text.replace(a, b)
    return text


def goal_readout(result: ExploreResult, model_index: int, index: int = 0, ascii_only: bool = False) -> str:
    """Whether the attack reached its goal on image ``index`` for model ``model_index``, in words,
    judged against the model's clean prediction: e.g. "goal reached: label flipped 7 → 8",
    "attack failed: the label is still 7", "label changed 4 → 8; target 9 not reached", "goal
    reached: label 7 kept"; on an image the model already misclassifies the sentence starts with
    that, e.g. "already misclassified (clean prediction dog); attack failed: the prediction is
    still dog"."""
    m, names = result.models[model_index], result.class_names
    y, t = names[int(m.y[index])], names[int(m.target[index])]
    clean, pred = names[int(m.clean_pred[index])], names[int(m.adv_pred[index])]
    changed, reached = bool(m.label_changed[index]), bool(m.target_reached[index])
    if not m.misclassified[index]:
        text = {
            "flip": (f"goal reached: label flipped {y} → {pred}" if changed
                     else f"attack failed: the label is still {y}"),
            "reach": (f"goal reached: target {t} is the prediction" if reached and changed
                      else f"target {t} is the clean prediction: nothing to attack" if reached
                      else f"label changed {y} → {pred}; target {t} not reached" if changed
                      else f"attack failed: target {t} not reached (prediction {pred})"),
            "keep": (f"goal missed: the label changed {y} → {pred} (the paper's protocol drops such images)"
                     if changed else f"goal reached: label {y} kept"),
        }[result.goal]
        return _text(text, ascii_only)
    moved = f"prediction changed {clean} → {pred}" + (" (the true class)" if pred == y else "")
    text = {
        "flip": moved if changed else f"attack failed: the prediction is still {clean}",
        "reach": (f"{moved}; target {t} reached" if reached and changed
                  else f"target {t} is the clean prediction: nothing to attack" if reached
                  else f"{moved}; target {t} not reached" if changed
                  else f"attack failed: target {t} not reached (the prediction is still {clean})"),
        "keep": f"goal missed: the {moved}" if changed else f"prediction {clean} kept",
    }[result.goal]
    return _text(f"already misclassified (clean prediction {clean}); {text}", ascii_only)


def eps_found_readout(result: ExploreResult, model_index: int, index: int = 0) -> str:
    """The minimum-eps search's result for image ``index`` (the value under ``EPS_FOUND_LABEL``):
    the l-inf size of the example found, an upper bound on the minimum eps (CIFAR-10 also in
    1/255 units); "none needed: already misclassified" where the clean prediction is already the
    target; else "none found up to <eps> (not a proof of robustness)": the search's attack is
    not the strongest possible."""
    m = result.models[model_index]
    if m.clean_pred[index] == m.target[index]:
        return ("none needed: already misclassified" if m.misclassified[index]
                else "none needed: t is the clean prediction")
    if not m.goal_reached[index]:
        return f"none found up to {result.attack.get('eps', 1.0):g} (not a proof of robustness)"
    linf = float(m.linf[index])
    return f"{linf:.4f}" + (f" ({linf * 255:.2f}/255)" if result.dataset == DATASETS["cifar10"].label else "")


def bound_readout(m: ModelResult, index: int = 0, ascii_only: bool = False) -> str:
    """The 2-class bound for image ``index`` with the relation that holds between the shown
    (4-decimal) numbers, and whether the bound applies: it does only where t beats y at x'."""
    d2, bound = round(float(m.d2_cam_hw[index]), 4), round(float(m.bound[index]), 4)
    sign = "≥" if d2 >= bound else "<"
    if not m.bound_applies[index]:
        note = "the bound does not apply: t does not beat y at x′"
    elif d2 >= bound:
        note = "t beats y at x′: the bound applies and holds"
    else:
        note = "t beats y at x′ yet D2 is below the bound: a violation, please report it"
    return _text(f"D2 of CAM/(h·w) = {d2:.4f} {sign} bound ½(Z_y − Z_t) = {bound:.4f} ({note})", ascii_only)


def perturbation_readout(m: ModelResult, index: int = 0, ascii_only: bool = False) -> str:
    """Caption of the amplified perturbation: its magnification, or "no perturbation" when
    ||δ||_inf is below PERTURBATION_FLOOR."""
    gain = float(m.magnification[index])
    text = (f"no perturbation (‖δ‖∞ < {PERTURBATION_FLOOR:g})" if np.isnan(gain)
            else f"perturbation ×{gain:.3g}")
    return _text(text.replace("‖δ‖∞", "Linf") if ascii_only else text, ascii_only)


def settings_line(result: ExploreResult, ascii_only: bool = False) -> str:
    """The attack and its settings in one line, derived values included (e.g. PGD's step_size),
    with the dataset and the images' gallery numbers."""
    settings = {k: v for k, v in result.attack.items() if k not in ("name", "target")}
    target = result.attack.get("target")
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())
    where = f"{result.dataset} " if result.dataset else ""
    images = ", ".join(f"#{result.image_id(i)}" for i in range(len(result.x)))
    text = (f"{where}{images} | {result.attack.get('name', 'attack')}: {shown}"
            + ("" if target is None else f", target={'/'.join(result.class_names[int(t)] for t in target)}")
            + f" | goal: {result.goal}")
    return _text(text, ascii_only)


# ----------------------------------------------------------------------------------------------
# Exports


def metrics_rows(result: ExploreResult) -> list[dict]:
    """One flat row per (image, model, explainer): dataset, the image's gallery number, the attack
    and its settings (with the gamma ISA's search found, or the minimum-eps search's readout),
    whether it reached its goal and the goal readout, the flags misclassified before, label changed
    and target reached (None for an untargeted attack), predictions, perturbation size, every
    metric, and the CAM/(h·w) bound beside D2 and D1."""
    settings = {k: v for k, v in result.attack.items() if k not in ("name", "target")}
    rows = []
    for k, m in enumerate(result.models):
        for i in range(len(result.x)):
            base = {
                "dataset": result.dataset, "image": result.image_id(i), "model": m.model,
                "attack": result.attack.get("name", ""), **settings, "goal": result.goal,
                "goal reached": bool(m.goal_reached[i]), "readout": goal_readout(result, k, i),
                "misclassified before": bool(m.misclassified[i]), "label changed": bool(m.label_changed[i]),
                "target reached": bool(m.target_reached[i]) if result.goal == "reach" else None,
                "true": result.class_names[int(m.y[i])], "clean_pred": result.class_names[int(m.clean_pred[i])],
                "adv_pred": result.class_names[int(m.adv_pred[i])], "t": result.class_names[int(m.target[i])],
                "linf": float(m.linf[i]), "l2": float(m.l2[i]),
                "D1 CAM/(h·w)": float(m.d1_cam_hw[i]), "D2 CAM/(h·w)": float(m.d2_cam_hw[i]),
                "bound ½(Z_y−Z_t)": float(m.bound[i]), "t beats y at x'": bool(m.bound_applies[i]),
            }
            if m.found_gamma is not None:  # ISA's gamma search: the gamma of this example (NaN: none worked)
                base["gamma found"] = float(m.found_gamma[i])
            if result.attack.get("name") == "min-eps":
                base["eps found"] = eps_found_readout(result, k, i)
            for name, ms in m.maps.items():
                rows.append({**base, "explainer": name, **{k: float(v[i]) for k, v in ms.metrics.items()}})
    return rows


def to_csv(result: ExploreResult) -> str:
    """The metrics rows as CSV text."""
    return rows_to_csv(metrics_rows(result))


def to_json(result: ExploreResult) -> str:
    """Dataset, gallery numbers, models, attack settings and goal, metric definitions and the
    metrics rows as JSON text."""
    return json.dumps({"dataset": result.dataset, "images": [result.image_id(i) for i in range(len(result.x))],
                       "models": [m.model for m in result.models], "attack": result.attack, "goal": result.goal,
                       "definitions": {**METRIC_DEFINITIONS, "bound": BOUND_DEFINITION},
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
