"""The results of the pages a lesson step opens (Explore, Random start), shared by those pages, by
a lesson's slides (app_support/lesson_slides.py) and by the start-up precompute of the shipped
lessons' views (app_support/precompute.py).

A request is the dict the Explore page builds from its widgets (``explore_request``); each model's
result is one call into ``interp_core.services.explore`` (``run_model``), kept in the server's
store (app_support/shared_compute.py: identical requests computed once, distinct ones queued
fairly) under the key ``model_job`` gives with it, so the page, the slides and the precompute
reuse each other's results. A Random start request is the tuple (spec, dataset, index, eps,
steps, seed), its result and key from ``start_job``.

``link_request`` turns a share link's parameters (the Explore page's URL) into such a request, the
way the page reads a link it is opened with; a setting the link leaves out takes the value a fresh
session starts with (the page itself keeps the session's current value instead). ``start_request``
does the same for a link of the Random start page.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any, Callable

import numpy as np
import streamlit as st
import torch

from app_support.attack_controls import DEFAULT_ATTACK, attack_params, param_fields
from app_support.common import (DATASET_LABELS, default_models, full_data_source, get_dataset, get_image_folder,
                                get_model, model_label, model_table)
from app_support.shared_compute import Busy, server_compute
from app_support.url_state import Link
from interp_core.attacks import ATTACKS
from interp_core.data import ImageDataset
from interp_core.datasets import DATASETS
from interp_core.interpret import EXPLAINERS
from interp_core.services.explore import (CleanMapCache, ExploreAttack, ExploreImages, ExploreResult, MisclassifiedImage,
                                          explore)
from interp_core.services.random_start import StartRun, side_by_side, start_comparison

#: Predictions for the gallery filter, and the images a link may name, cover the first images of a split.
GALLERY_LIMIT = 2000
DEFAULT_EXPLAINERS = ["cam", "gradcampp", "saliency", "ig"]


@st.cache_resource
def clean_map_cache() -> CleanMapCache:
    """The clean images' maps of the cached models, shared by every session: a second attack on
    an image explains only its adversarial image."""
    return CleanMapCache()


def run_model(x: np.ndarray, request: dict, spec: str) -> ExploreResult:
    """The one call into interp_core for model ``spec`` of an Explore ``request`` on x (1, C, H, W)
    in [0, 1] (one model at a time, so adding a model to the comparison computes only that one).
    Raises MisclassifiedImage for an attack that needs a correctly classified image (ISA). The
    settings shown are those asked for (not γ while it is searched)."""
    y, target = request["y"], request["target"]
    images = ExploreImages(torch.from_numpy(x), None if y is None else torch.tensor([y]), request["class_names"],
                           DATASET_LABELS[request["dataset"]], [request["image_id"]])
    attack = ExploreAttack.registered(request["attack"], dict(request["params"]),
                                      None if target is None else torch.tensor([target]))
    return explore({model_label(spec): get_model(spec)}, images, attack, list(request["explainers"]),
                   request["trajectory"], clean_map_cache())


def explore_request(x: np.ndarray, caption: str, y: int | None, class_names, specs, attack: str, params: dict,
                    target: int | None, explainers, trajectory: str, dataset: str, image_id) -> dict:
    """The request of one Explore view of image x (1, C, H, W) in [0, 1] (``caption`` names it on
    the page): hashable values only, the image by its hash. ``trajectory`` counts only when it is
    one of ``explainers``."""
    return dict(image=(caption, hashlib.sha1(x.tobytes()).hexdigest()), y=y, class_names=tuple(class_names),
                specs=tuple(specs), attack=attack, params=tuple(sorted(params.items())), target=target,
                explainers=tuple(explainers), trajectory=trajectory if trajectory in explainers else None,
                dataset=dataset, image_id=image_id)


def model_job(request: dict, x: np.ndarray, spec: str) -> tuple[tuple, Callable[[], ExploreResult]]:
    """The store's key of model ``spec``'s result of ``request`` (the image's hash and every setting)
    and its computation (``run_model`` on x); get it with ``shared_result`` on a page."""
    return (("explore", request["image"][1], spec, *((k, v) for k, v in request.items() if k not in ("specs", "image"))),
            lambda: run_model(x, request, spec))


def view_key(request: dict) -> tuple:
    """The key of ``request``'s results for all its models together (what its figures are drawn from)."""
    return ("explore", request["image"][1], tuple(request["specs"]),
            *((k, v) for k, v in request.items() if k not in ("specs", "image")))


#: Where Explore's image comes from, with its label.
SOURCES = {"gallery": "dataset gallery", "folder": "image folder", "upload": "upload an image",
           "draw": "draw a digit"}
#: The view settings of an Explore link: (name, decoded like, allowed values).
VIEW_FIELDS = (("maps", "", ["y", "t"]), ("grid", "", ["native", "input"]), ("overlay", False, None),
               ("shared", False, None), ("present", False, None))


def read_link(link: Link, params: dict[str, str], fallback: dict[str, str] | None = None) -> dict[str, Any]:
    """The usable settings of an Explore link's ``params``, decoded and checked (what the link leaves
    out or gives badly is missing; ``link.ignored`` says why): "dataset", "split", "source",
    "image" (a gallery or folder index), "models", "attack", the attack's parameters (by
    ``param_fields`` name), "target", "explainers", "trajectory", the ``VIEW_FIELDS`` and "run".
    Settings that others depend on (dataset, source, attack) fall back to ``fallback``'s, then to
    the app's defaults, to check those others."""
    fallback = fallback or {}
    read = functools.partial(link.read, params)
    found: dict[str, Any] = {}

    def keep(name: str, value: Any) -> Any:
        if value is not None:
            found[name] = value
        return value

    dataset = keep("dataset", read("dataset", options=list(DATASET_LABELS))) or fallback.get("dataset", "mnist")
    split = keep("split", read("split", options=["demo"] + (["test"] if full_data_source(dataset) else []))) or "demo"
    source = keep("source", read("source", options=list(SOURCES))) or fallback.get("source", "gallery")
    images = min(len(get_dataset(dataset, split)), GALLERY_LIMIT) if source == "gallery" else GALLERY_LIMIT
    keep("image", read("image", like=0, options=lambda i: 0 <= i < images))
    keep("models", read("models", like=[], options=[m["name"] for m in model_table(dataset)]))
    attack = keep("attack", read("attack", options=list(ATTACKS))) or fallback.get("attack", DEFAULT_ATTACK)
    for param, (_, like, allowed) in param_fields(attack, dataset, "explore").items():
        keep(param, read(param, like=like, options=allowed))
    keep("target", read("target", options=["runner-up"] + get_dataset(dataset, "demo").class_names))
    explainers = keep("explainers", read("explainers", like=[], options=list(EXPLAINERS)))
    keep("trajectory", read("trajectory", options=explainers or list(EXPLAINERS)))
    for name, like, allowed in VIEW_FIELDS:
        keep(name, read(name, like=like, options=allowed))
    if params.get("run") == "1":
        found["run"] = True
    return found


def link_request(params: dict[str, str]) -> tuple[dict, np.ndarray, list[str]]:
    """An Explore link's view of a dataset gallery image as (request, x (1, C, H, W), the link's
    settings that were not used, each with why). Raises ValueError for a link whose image cannot be
    recomputed from it (an upload, a drawing or a folder image) or that leaves no model."""
    link = Link("explore")
    found = read_link(link, params)
    dataset, split, source = found.get("dataset", "mnist"), found.get("split", "demo"), found.get("source", "gallery")
    if source != "gallery":
        raise ValueError(f"its image comes from the {source!r} source, which a link does not carry; "
                         "only dataset gallery images can be recomputed")
    data = get_dataset(dataset, split)
    index = found.get("image", DATASETS[dataset].default_image if split == "demo" else 0)
    specs = found.get("models") or default_models(dataset)
    if not specs:
        raise ValueError(f"no {DATASET_LABELS[dataset]} model is available")
    attack = found.get("attack", DEFAULT_ATTACK)
    shown = {param: found[param] for param in param_fields(attack, dataset, "explore") if param in found}
    names = data.class_names
    choice = found.get("target", "runner-up") if ATTACKS[attack].targeted else "runner-up"
    target = None if choice == "runner-up" else names.index(choice)
    explainers = found.get("explainers") or DEFAULT_EXPLAINERS
    trajectory = found.get("trajectory") if found.get("trajectory") in explainers else explainers[0]
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
            results.append(server_compute().get(*model_job(request, x, spec))[0])
        except MisclassifiedImage as err:
            notes.append(f"Refused: {err}")
        except Busy as err:
            notes.append(f"{model_label(spec)}: the server is busy ({err})")
    if not results:
        return None, notes
    return dataclasses.replace(results[0], models=[r.models[0] for r in results]), notes


#: The Random start page's demo images (its sample); its settings a link may carry beside the
#: dataset and model, each as (decoded like, allowed), and its session-state key (``{dataset}``: per dataset).
START_IMAGES = 300
START_FIELDS = {"image": (0, lambda i: 0 <= i < START_IMAGES, "start_image"),
                "eps": (0.0, lambda e: 0 < e <= 1, "start_eps_{dataset}"),
                "steps": (0, lambda s: 1 <= s <= 1000, "start_steps"),
                "seed": (0, lambda s: s >= 0, "start_seed")}


def start_defaults(dataset: str, names: list[str]) -> dict[str, Any]:
    """The Random start page's opening settings for ``dataset`` (``names`` its models): the authors'
    Int network, whose finding the page re-tests (None when it is not there), and MNIST demo image
    8 (a 1), which at eps 0.35 keeps its label under the authors' attack and loses it to one random
    start (app_support/demos.py, demo "start", gives the measured numbers); 200 steps, seed 0."""
    model = f"{dataset}-smallgap-int-paper"
    return dict(model=model if model in names else None, image=8, eps=DATASETS[dataset].paper_eps[-2], steps=200,
                seed=0)


def start_runs(spec: str, dataset: str, index: int, eps: float, steps: int, seed: int) -> dict[str, StartRun]:
    """Both starts of the Random start page on demo image ``index`` (see start_comparison)."""
    data = get_dataset(dataset, "demo")
    images = ExploreImages(data.images[index:index + 1], data.labels[index:index + 1], data.class_names, dataset,
                           [index])
    return start_comparison(get_model(spec), images, eps, steps=steps, seed=seed, name=model_label(spec))


def start_job(request: tuple) -> tuple[tuple, Callable[[], dict[str, StartRun]]]:
    """The store's key of a Random start ``request`` (spec, dataset, index, eps, steps, seed) and its
    computation (``start_runs``); get it with ``shared_result`` on a page."""
    return ("random_start", *request), lambda: start_runs(*request)


def start_request(params: dict[str, str]) -> tuple[tuple, list[str]]:
    """A Random start link's request (the page's opening settings for what it leaves out) and the
    settings not used. Raises ValueError when the link names no usable model."""
    link = Link("random_start")
    dataset = link.read(params, "dataset", options=list(DATASET_LABELS)) or "mnist"
    names = [m["name"] for m in model_table(dataset)]
    defaults = start_defaults(dataset, names)
    spec = link.read(params, "model", options=names) or defaults["model"]
    if spec is None:
        raise ValueError(f"no {DATASET_LABELS[dataset]} model is available")
    values = {name: link.read(params, name, like=like, options=allowed)
              for name, (like, allowed, _) in START_FIELDS.items()}
    values = {name: defaults[name] if value is None else value for name, value in values.items()}
    return (spec, dataset, values["image"], values["eps"], values["steps"], values["seed"]), link.ignored


def start_result(params: dict[str, str]) -> tuple[ExploreResult, list[str]]:
    """A Random start link's view as its side-by-side result (from the server's store) and the
    settings not used. Raises ValueError when the link names no usable model."""
    request, ignored = start_request(params)
    return side_by_side(server_compute().get(*start_job(request))[0]), ignored


def source_data(source: tuple) -> ImageDataset:
    """The images of a gallery: ("dataset", name, split) or ("folder", root, dataset, fingerprint)."""
    return get_image_folder(*source[1:]) if source[0] == "folder" else get_dataset(*source[1:])


# in a module, not a page: st.cache_data reads its function's source when it decorates, which a page
# would repeat on every run
@st.cache_data(show_spinner="Classifying the gallery…", max_entries=16)
def gallery_predictions(spec: str, source: tuple) -> np.ndarray:
    """Predictions of ``spec`` on the first GALLERY_LIMIT images of the gallery ``source``, (n,)."""
    images = source_data(source).images[:GALLERY_LIMIT]
    model = get_model(spec)
    with torch.no_grad():
        return torch.cat([model(images[i:i + 500]).argmax(1) for i in range(0, len(images), 500)]).numpy()
