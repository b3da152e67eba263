"""Explore's computation, shared by the Explore page and by the slides of a lesson (app_support/slides.py).

A request is the dict the Explore page builds from its widgets (``explore_request``); each model's
result comes from ``model_result``, one call into ``interp_core.services.explore`` kept in the
server-wide ``shared_results`` (identical requests computed once, distinct ones queued fairly,
app_support/shared_compute.py), so a lesson's slides and the page reuse each other's results.

``link_request`` turns a share link's parameters (the Explore page's URL) into such a request, the
way the page reads a link it is opened with; a setting the link leaves out takes the value a fresh
session starts with (the page itself keeps the session's current value instead). ``start_result``
does the same for a link of the Random start page.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import streamlit as st
import torch

from app_support.attack_controls import DEFAULT_ATTACK, attack_params, param_fields
from app_support.common import (DATASET_LABELS, default_models, full_data_source, get_dataset, get_model,
                                model_label, model_table)
from app_support.shared_compute import Busy, SharedCompute, WaitCallback
from app_support.url_state import Link
from interp_core.attacks import ATTACKS
from interp_core.datasets import DATASETS
from interp_core.interpret import EXPLAINERS
from interp_core.services.explore import (CleanMapCache, ExploreAttack, ExploreImages, ExploreResult, MisclassifiedImage,
                                          explore)
from interp_core.services.random_start import side_by_side, start_comparison

#: Predictions for the gallery filter, and the images a link may name, cover the first images of a split.
GALLERY_LIMIT = 2000
DEFAULT_EXPLAINERS = ["cam", "gradcampp", "saliency", "ig"]


@st.cache_resource
def clean_map_cache() -> CleanMapCache:
    """The clean images' maps of the cached models, shared by every session: a second attack on
    an image explains only its adversarial image."""
    return CleanMapCache()


@st.cache_resource
def shared_results() -> SharedCompute:
    """The server's Explore results and compute queue, shared by every session (a class)."""
    return SharedCompute()


def run_model(x: np.ndarray, y: int | None, class_names: tuple, spec: str, attack: str, params: tuple,
              target: int | None, explainers: tuple, trajectory: str | None, dataset: str,
              image_id) -> ExploreResult:
    """The one call into interp_core for one model on x (1, C, H, W) in [0, 1]. Raises
    MisclassifiedImage for an attack that needs a correctly classified image (ISA). The settings
    shown are those asked for (not γ while it is searched)."""
    images = ExploreImages(torch.from_numpy(x), None if y is None else torch.tensor([y]), class_names,
                           DATASET_LABELS[dataset], [image_id])
    request = ExploreAttack.registered(attack, dict(params), None if target is None else torch.tensor([target]))
    return explore({model_label(spec): get_model(spec)}, images, request, list(explainers), trajectory,
                   clean_map_cache())


def explore_request(x: np.ndarray, caption: str, y: int | None, class_names, specs, attack: str, params: dict,
                    target: int | None, explainers, trajectory: str, dataset: str, image_id) -> dict:
    """The request of one Explore view of image x (1, C, H, W) in [0, 1] (``caption`` names it on
    the page): hashable values only, the image by its hash. ``trajectory`` counts only when it is
    one of ``explainers``."""
    return dict(image=(caption, hashlib.sha1(x.tobytes()).hexdigest()), y=y, class_names=tuple(class_names),
                specs=tuple(specs), attack=attack, params=tuple(sorted(params.items())), target=target,
                explainers=tuple(explainers), trajectory=trajectory if trajectory in explainers else None,
                dataset=dataset, image_id=image_id)


def model_result(request: dict, x: np.ndarray, spec: str, on_wait: WaitCallback | None = None) -> ExploreResult:
    """Model ``spec``'s result of ``request`` on x, from ``shared_results`` (computed there when no
    session has it). Raises MisclassifiedImage (the model refuses the image), Busy (the queue is
    full) or ValueError (settings the attack rejects)."""
    settings = {k: v for k, v in request.items() if k not in ("specs", "image")}
    result, _ = shared_results().get((request["image"][1], spec, *settings.items()),
                                     lambda: run_model(x, **settings, spec=spec), on_wait)
    return result


def link_request(params: dict[str, str]) -> tuple[dict, np.ndarray, list[str]]:
    """An Explore link's view of a dataset gallery image as (request, x (1, C, H, W), the link's
    settings that were not used, each with why). Raises ValueError for a link whose image cannot be
    recomputed from it (an upload, a drawing or a folder image) or that leaves no model."""
    link = Link("explore")
    dataset = link.read(params, "dataset", options=list(DATASET_LABELS)) or "mnist"
    split = link.read(params, "split", options=["demo"] + (["test"] if full_data_source(dataset) else [])) or "demo"
    source = params.get("source", "gallery")
    if source != "gallery":
        raise ValueError(f"its image comes from the {source!r} source, which a link does not carry; "
                         "only dataset gallery images can be recomputed")
    data = get_dataset(dataset, split)
    index = link.read(params, "image", like=0, options=lambda i: 0 <= i < min(len(data), GALLERY_LIMIT))
    index = (DATASETS[dataset].default_image if split == "demo" else 0) if index is None else index
    registered = [m["name"] for m in model_table(dataset)]
    specs = link.read(params, "models", like=[], options=registered) or default_models(dataset)
    if not specs:
        raise ValueError(f"no {DATASET_LABELS[dataset]} model is available")
    attack = link.read(params, "attack", options=list(ATTACKS)) or DEFAULT_ATTACK
    shown: dict[str, Any] = {}
    for param, (_, like, allowed) in param_fields(attack, dataset, "explore").items():
        value = link.read(params, param, like=like, options=allowed)
        if value is not None:
            shown[param] = value
    names = data.class_names
    target = None
    if ATTACKS[attack].targeted:
        choice = link.read(params, "target", options=["runner-up"] + names) or "runner-up"
        target = None if choice == "runner-up" else names.index(choice)
    explainers = link.read(params, "explainers", like=[], options=list(EXPLAINERS)) or DEFAULT_EXPLAINERS
    trajectory = link.read(params, "trajectory", options=explainers) or explainers[0]
    x = data.images[index:index + 1].numpy()
    request = explore_request(x, f"#{index}", int(data.labels[index]), names, specs, attack,
                              attack_params(attack, dataset, shown), target, explainers, trajectory, dataset, index)
    return request, x, link.ignored


def view_result(request: dict, x: np.ndarray) -> tuple[ExploreResult | None, list[str]]:
    """Every model's result of ``request`` together (in the request's order), and a note for each
    model that refused the image or found the server busy; None when no model gave a result."""
    results, notes = [], []
    for spec in request["specs"]:
        try:
            results.append(model_result(request, x, spec))
        except MisclassifiedImage as err:
            notes.append(f"Refused: {err}")
        except Busy as err:
            notes.append(f"{model_label(spec)}: the server is busy ({err})")
    if not results:
        return None, notes
    return dataclasses.replace(results[0], models=[r.models[0] for r in results]), notes


#: The Random start page's images (its demo sample) and the one it opens at.
START_IMAGES, START_IMAGE = 300, 8


@st.cache_data(show_spinner=False, max_entries=32)
def start_runs(spec: str, dataset: str, index: int, eps: float, steps: int, seed: int) -> ExploreResult:
    """Both starts of the Random start page on demo image ``index`` as one result whose "models"
    are the starts (``side_by_side``), cached by every setting."""
    data = get_dataset(dataset, "demo")
    images = ExploreImages(data.images[index:index + 1], data.labels[index:index + 1], data.class_names, dataset,
                           [index])
    return side_by_side(start_comparison(get_model(spec), images, eps, steps=steps, seed=seed, name=model_label(spec)))


def start_result(params: dict[str, str]) -> tuple[ExploreResult, list[str]]:
    """A Random start link's view (the page's defaults for what it leaves out) as its side-by-side
    result and the settings not used. Raises ValueError when the link names no usable model."""
    link = Link("random_start")
    dataset = link.read(params, "dataset", options=list(DATASET_LABELS)) or "mnist"
    names = [m["name"] for m in model_table(dataset)]
    default = f"{dataset}-smallgap-int-paper"
    spec = link.read(params, "model", options=names) or (default if default in names else None)
    if spec is None:
        raise ValueError(f"no {DATASET_LABELS[dataset]} model is available")
    index = link.read(params, "image", like=0, options=lambda i: 0 <= i < START_IMAGES)
    eps = link.read(params, "eps", like=0.0, options=lambda e: 0 < e <= 1)
    steps = link.read(params, "steps", like=0, options=lambda s: 1 <= s <= 1000)
    seed = link.read(params, "seed", like=0, options=lambda s: s >= 0)
    result = start_runs(spec, dataset, START_IMAGE if index is None else index,
                        DATASETS[dataset].paper_eps[-2] if eps is None else eps,
                        200 if steps is None else steps, 0 if seed is None else seed)
    return result, link.ignored
