"""Interpretation maps (docs/method.md#maps), one calling convention for all of them:

    explainer(model, x, target, create_graph=False) -> maps (N, 1, h, w)

``x`` is (N, C, H, W) in [0, 1] and ``target`` (N,) the class to explain per example. CAM-family
maps (CAM, Grad-CAM++, Grad-CAM) live on the feature grid (h, w); gradient maps (saliency, IG,
SmoothGrad, input x gradient) on the input grid, summed over colour channels. One exception: IG
in the authors' form (``form="authors"``, the map of their measures) keeps the channels, shape
(N, 1, C, H, W). Maps are raw (not normalized); ``upsample_to_input`` resizes for display.

With ``create_graph=False`` saliency, input x gradient and Grad-CAM on a named layer are detached
maps computed by Captum; with ``create_graph=True`` the project's own differentiable form is used
(for attacks and training losses), and the tests check that both agree. Three are the project's
own in both cases, each compared with Captum by the tests: IG (its batched form: the classes of an
image share each forward pass), Grad-CAM on the default last layer (ReLU(CAM) / (h w) in closed
form) and SmoothGrad (noise scaled per image and drawn from a seeded generator).

``explain_classes`` explains several classes per example, (N, M) -> (N, M, h, w), in one call;
``explainer(model, x, target)`` is its case M = 1.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from captum.attr import InputXGradient as CaptumInputXGradient
from captum.attr import LayerGradCam
from captum.attr import Saliency as CaptumSaliency

from interp_core.checks import check_range
from interp_core.models.architectures import CAMNet, cam_from_features, smooth_copy


def _check(model: torch.nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """The target classes as a long tensor on x's device: (N,) or one class for every image ->
    (N,); (N, M) stays (N, M). Raises ValueError for a wrong shape or a class out of range."""
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    target = torch.as_tensor(target, device=x.device).long()
    if target.dim() < 2:
        target = target.reshape(-1)
        if target.numel() == 1 and x.shape[0] > 1:
            target = target.expand(x.shape[0])
    if target.dim() > 2 or target.shape[0] != x.shape[0]:
        raise ValueError(f"target has {target.shape[0]} entries for {x.shape[0]} images")
    classes = model.head.out_features if isinstance(model, CAMNet) else None  # other models: unknown K
    if target.numel() and (target.min() < 0 or (classes is not None and target.max() >= classes)):
        upper = classes - 1 if classes is not None else "K - 1"
        raise ValueError(f"target classes must be in [0, {upper}], got {sorted(set(target.tolist()))}")
    return target


def _pick(maps: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) -> the target class's map (N, 1, h, w)."""
    return maps.gather(1, target.view(-1, 1, 1, 1).expand(-1, 1, *maps.shape[2:]))


class Explainer:
    """Base class: subclasses implement ``_explain`` (one class per example), or
    ``_explain_classes`` instead where the classes of one image share work (CAM, IG). ``name`` is
    the registry key, ``label`` the display name; ``native_grid`` tells whether maps live on the
    feature grid (True) or the input grid (False)."""

    name: str = ""
    label: str = ""
    native_grid: bool = False

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, target, create_graph: bool = False) -> torch.Tensor:
        """x (N, C, H, W) in [0, 1], target (N,) (or one class for all) -> maps (N, 1, h, w)."""
        return explain_classes(self, model, x, _check(model, x, target)[:, None], create_graph)

    def _explain(self, model, x, target, create_graph: bool) -> torch.Tensor:  # pragma: no cover
        """x (N, C, H, W), target (N,) -> maps (N, 1, h, w)."""
        raise NotImplementedError

    def _explain_classes(self, model, x, classes, create_graph: bool) -> torch.Tensor:
        """x (N, C, H, W), classes (N, M) -> maps (N, M, h, w): by default one ``_explain`` call on
        the M copies of x stacked into a batch of M * N."""
        n, m = classes.shape
        stacked = x if m == 1 else x.repeat(m, 1, 1, 1)
        if not create_graph:  # a leaf of its own, as Captum expects its inputs
            stacked = stacked.detach().requires_grad_(True)
        maps = self._explain(model, stacked, classes.t().reshape(-1), create_graph)  # (M * N, 1, h, w)
        return maps.view(m, n, *maps.shape[2:]).transpose(0, 1).contiguous()

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"


class CAM(Explainer):
    """CAM_c(x) = sum_k W[c, k] A_k(x) on the last feature grid; its grid mean is the logit Z_c."""

    name, label, native_grid = "cam", "CAM", True

    def _explain_classes(self, model: CAMNet, x, classes, create_graph):
        """One forward pass gives every class's map (N, K, h, w); the M asked for are picked."""
        maps = model.cam(x)
        return maps.gather(1, classes[:, :, None, None].expand(-1, -1, *maps.shape[2:]))


class GradCAMPlusPlus(Explainer):
    """Grad-CAM++ in the paper's closed form for a GAP + linear head: CAM with max(W, 0)."""

    name, label, native_grid = "gradcampp", "Grad-CAM++", True

    def _explain(self, model: CAMNet, x, target, create_graph):
        return _pick(cam_from_features(model.features(x), model.head.weight.clamp(min=0)), target)


class GradCAM(Explainer):
    """Grad-CAM (Selvaraju et al. 2017) on any layer: ReLU(sum_k alpha_k A_k), alpha_k the grid mean
    of dZ_target/dA_k. ``layer`` names a submodule (``model.get_submodule``); default: the last
    feature map, where Grad-CAM equals ReLU(CAM) / (h * w).

    A named layer is hooked on a private copy of the model, so a model shared between threads (the
    app's cached models) never carries a foreign hook.
    """

    name, label, native_grid = "gradcam", "Grad-CAM", True

    def __init__(self, layer: str | None = None):
        self.layer = layer

    def _explain(self, model: CAMNet, x, target, create_graph):
        if self.layer is None:
            features = model.features(x)
            score = _pick(cam_from_features(features, model.head.weight), target).mean(dim=(2, 3)).sum()
            return self._combine(features, score, create_graph)
        private = copy.deepcopy(model)
        layer = private.get_submodule(self.layer)
        if not create_graph:
            return LayerGradCam(private, layer).attribute(x, target=target, relu_attributions=True)
        captured = []
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            score = private(x).gather(1, target[:, None]).sum()
        finally:
            handle.remove()
        return self._combine(captured[0], score, create_graph)

    @staticmethod
    def _combine(features, score, create_graph):
        (grads,) = torch.autograd.grad(score, features, create_graph=create_graph)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        return F.relu((weights * features).sum(dim=1, keepdim=True))


def _input_gradient(model, x, target, create_graph: bool) -> torch.Tensor:
    """d Z_target / d x, (N, C, H, W); gradients via autograd.grad so parameter .grad is untouched."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    score = model(x).gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x, create_graph=create_graph)
    return grad


class Saliency(Explainer):
    """Input gradient dZ_target/dx summed over channels (``absolute``: of its absolute value)."""

    name, label = "saliency", "Saliency"

    def __init__(self, absolute: bool = False):
        self.absolute = absolute

    def _explain(self, model, x, target, create_graph):
        if create_graph:
            grad = _input_gradient(model, x, target, True)
            grad = grad.abs() if self.absolute else grad
        else:
            grad = CaptumSaliency(model).attribute(x, target=target, abs=self.absolute)
        return grad.sum(dim=1, keepdim=True)


class InputXGradient(Explainer):
    """x * dZ_target/dx, summed over channels."""

    name, label = "input_x_gradient", "Input x Gradient"

    def _explain(self, model, x, target, create_graph):
        if create_graph:
            attribution = x * _input_gradient(model, x, target, True)
        else:
            attribution = CaptumInputXGradient(model).attribute(x, target=target)
        return attribution.sum(dim=1, keepdim=True)


#: Forms of the IG map: "display" (summed over colour channels, of the model as given: the map the
#: app shows) and "authors" (the authors' measure map: every channel kept, computed on the
#: network's softplus copy with beta ``AUTHORS_IG_BETA``, both when attacking and when reporting).
IG_FORMS = ("display", "authors")
AUTHORS_IG_BETA = 1.0


class IntegratedGradients(Explainer):
    """IG_c(x) = (x - b) * mean_{k=1..steps} dZ_c/dz at z = b + (k / steps)(x - b): the right
    Riemann sum of the paper's evaluation form (baseline 0, 100 steps).

    ``form="display"``: the map of the model as given, summed over channels, (N, 1, H, W).
    ``form="authors"``: the authors' map (docs/method.md#maps): the full (N, 1, C, H, W) map of
    ``smooth_copy(model, AUTHORS_IG_BETA)``, ReLU replaced by softplus with beta = 1, whether the
    map is attacked or reported. ``batch_steps`` bounds how many interpolation points of every
    image go through the model in one pass (``batch_steps * N`` images: memory)."""

    name, label = "ig", "Integrated Gradients"

    def __init__(self, steps: int = 100, baseline: float = 0.0, batch_steps: int = 25, form: str = "display"):
        check_range("steps", steps, 2, 100_000, integer=True, hint=" (IG's Riemann sum needs two points)")
        check_range("baseline", baseline, 0.0, 1.0)
        check_range("batch_steps", batch_steps, 1, 100_000, integer=True)
        if form not in IG_FORMS:
            raise ValueError(f"IG form must be one of {IG_FORMS}, got {form!r}")
        self.steps, self.baseline, self.batch_steps, self.form = steps, baseline, batch_steps, form

    def _explain_classes(self, model, x, classes, create_graph):
        """x (N, C, H, W), classes (N, M) -> (N, M, H, W), or (N, M, C, H, W) in the authors' form.

        The points z_k = b + a_k (x - b), a_k = k / steps as Captum's ``riemann_right`` computes
        them (so the maps equal Captum's), go through the model ``batch_steps`` at a time for all N
        images together, (S * N, C, H, W) per pass; the M classes share that forward pass, each
        taking one backward pass."""
        if self.form == "authors":
            model = smooth_copy(model, AUTHORS_IG_BETA)
        n, m = classes.shape
        baseline = torch.full_like(x, self.baseline)
        alphas = torch.linspace(1 / self.steps, 1, self.steps).tolist()
        total = 0
        for start in range(0, self.steps, self.batch_steps):
            chunk = alphas[start:start + self.batch_steps]
            z = torch.cat([baseline + a * (x - baseline) for a in chunk])  # (S * N, C, H, W), step-major
            if not z.requires_grad:
                z.requires_grad_(True)
            logits = model(z)
            grads = []
            for j in range(m):
                score = logits.gather(1, classes[:, j].repeat(len(chunk))[:, None]).sum()
                (grad,) = torch.autograd.grad(score, z, retain_graph=create_graph or j < m - 1,
                                              create_graph=create_graph)
                grads.append(grad.view(len(chunk), n, *x.shape[1:]).sum(dim=0))
            total = total + torch.stack(grads, dim=1)  # (N, M, C, H, W)
        attribution = (x - baseline).unsqueeze(1) * total / self.steps
        return attribution if self.form == "authors" else attribution.sum(dim=2)


class SmoothGrad(Explainer):
    """Mean input gradient over ``samples`` noisy copies x + N(0, (noise * (max x - min x))^2),
    summed over channels (Smilkov et al. 2017). Noise comes from a generator seeded with ``seed``,
    so the same call gives the same map."""

    name, label = "smoothgrad", "SmoothGrad"

    def __init__(self, samples: int = 25, noise: float = 0.15, seed: int = 0):
        check_range("samples", samples, integer=True)
        check_range("noise", noise)
        check_range("seed", seed, integer=True)
        self.samples, self.noise, self.seed = samples, noise, seed

    def _explain(self, model, x, target, create_graph):
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        spread = (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))).view(-1, 1, 1, 1) * self.noise
        total = torch.zeros_like(x)
        for _ in range(self.samples):
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            total = total + _input_gradient(model, x + spread * noise, target, create_graph)
        return (total / self.samples).sum(dim=1, keepdim=True)


#: Every explainer by name: the app's and the CLI's choices come from here.
EXPLAINERS: dict[str, type[Explainer]] = {
    cls.name: cls for cls in (CAM, GradCAM, GradCAMPlusPlus, Saliency, IntegratedGradients, SmoothGrad, InputXGradient)
}
#: Display names by explainer name.
LABELS = {name: cls.label for name, cls in EXPLAINERS.items()}


def get_explainer(name: str, **options) -> Explainer:
    """An explainer from the registry by name, configured with ``options``."""
    if name not in EXPLAINERS:
        raise ValueError(f"unknown explainer {name!r}; known: {sorted(EXPLAINERS)}")
    return EXPLAINERS[name](**options)


def explain_classes(explainer: Explainer, model, x: torch.Tensor, classes: torch.Tensor,
                    create_graph: bool = False) -> torch.Tensor:
    """Maps of several classes per example: x (N, C, H, W) in [0, 1], classes (N, M) -> (N, M, h, w)
    (IG's authors' form: (N, M, C, H, W)); detached unless ``create_graph``.

    One batched computation for all M classes: CAM takes one forward pass, IG one forward pass per
    group of interpolation points shared by the classes, the others one call on the M copies of x
    stacked into a batch of M * N."""
    classes = _check(model, x, classes)
    if classes.dim() != 2:
        raise ValueError(f"classes must be (N, M), got shape {tuple(classes.shape)}")
    if create_graph:
        return explainer._explain_classes(model, x, classes, True)
    with torch.enable_grad():
        return explainer._explain_classes(model, x.detach().requires_grad_(True), classes, False).detach()


def explain_all_classes(explainer: Explainer, model, x: torch.Tensor, num_classes: int,
                        create_graph: bool = False) -> torch.Tensor:
    """Maps of every class: (N, K, h, w) (or (N, K, C, H, W), as ``explain_classes``)."""
    classes = torch.arange(num_classes, device=x.device).expand(x.shape[0], -1)
    return explain_classes(explainer, model, x, classes, create_graph)


def upsample_to_input(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Display helper: maps (N, M, h, w) -> (N, M, H, W) by bilinear interpolation."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
