"""Explainer speed: each explainer of ``interp_core.interpret`` (detached maps, the app's path)
against calling Captum directly for the same map, MNIST and CIFAR-10 smallgap, one thread.

Captum counterparts: CAM = LayerGradCam without ReLU on the last feature layer times h*w (for a
GAP + linear head, Grad-CAM's weights are the head weights / (h w)); Grad-CAM = LayerGradCam; saliency,
input x gradient and IG (100 right-Riemann steps) = their Captum classes; SmoothGrad =
NoiseTunnel(Saliency) with the same sample count and noise level. Grad-CAM++ (the paper's closed
form) has no Captum counterpart. Medians of interleaved repetitions within this run, in CPU time.
"""

from __future__ import annotations

import torch
from captum.attr import InputXGradient, IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency

from benchmarks.results import medians
from interp_core.data import load_dataset
from interp_core.interpret import EXPLAINERS, get_explainer
from interp_core.models import load_model

CASES = (("mnist-smallgap-normal-paper", "mnist"), ("cifar10-smallgap-normal-paper", "cifar10"))


def _captum(name: str, model, x, y):
    """Captum's call for the map of explainer ``name`` (None: Captum has no such method)."""
    layer = model.conv3  # smallgap's last feature layer
    if name == "cam":
        grid = model.features(x[:1]).shape[2] * model.features(x[:1]).shape[3]
        return lambda: LayerGradCam(model, layer).attribute(x, target=y, relu_attributions=False) * grid
    if name == "gradcam":
        return lambda: LayerGradCam(model, layer).attribute(x, target=y, relu_attributions=True)
    if name == "saliency":
        return lambda: Saliency(model).attribute(x, target=y, abs=False).sum(1, keepdim=True)
    if name == "input_x_gradient":
        return lambda: InputXGradient(model).attribute(x, target=y).sum(1, keepdim=True)
    if name == "ig":
        return lambda: IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=y, n_steps=100,
                                                            method="riemann_right",
                                                            internal_batch_size=25 * len(x)).sum(1, keepdim=True)
    if name == "smoothgrad":
        spread = float(0.15 * (x.amax() - x.amin()))
        return lambda: NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=spread,
                                                              target=y).sum(1, keepdim=True)
    return None


def run(quick: bool) -> dict:
    torch.set_num_threads(1)
    batch = 8 if quick else 50
    rows = []
    for model_name, dataset in CASES:
        model, _ = load_model(model_name)
        data = load_dataset(dataset, "demo", n=batch)
        x, y = data.images, data.labels
        for name in EXPLAINERS:
            explainer = get_explainer(name)
            fns = {"ours": lambda: explainer(model, x, y)}
            captum = _captum(name, model, x, y)
            if captum is not None:
                fns["captum"] = captum
            repeats = (1 if name in ("ig", "smoothgrad") else 3) * (1 if quick else 3)
            t = medians(fns, repeats)
            row = {"model": model_name, "explainer": name, "repeats": repeats,
                   "CPU ms per batch (ours)": 1000 * t["ours"]}
            row["ours / captum"] = t["ours"] / t["captum"] if captum is not None else "no Captum counterpart"
            rows.append(row)
    return {"title": "Explainers against Captum", "settings": {"threads": 1, "batch": batch, "warm-up": "one round"},
            "tables": {"Detached maps, batch of demo images": rows},
            "notes": ["CAM and Grad-CAM++ are closed forms on one forward pass; IG: 100 steps, 25 scaled copies "
                      "of the batch per pass on both sides"]}
