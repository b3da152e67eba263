"""The results of the pages a lesson step opens (Explore, Random start) as requests to the server's
store (app_support/shared_compute.py): each result's key and computation, the request a link asks
for (what the page asks for once it has taken the link's values, worked out without drawing it),
and the start-up precompute of the shipped lessons' views, so that a class opening a lesson's view
gets its result from the store instead of computing it.

The precompute starts once per server process (``start_precompute``, called by every page's set-up)
and runs in a background thread, one view after another through the store's queue (so it holds at
most one of its places) on the process's one torch thread (interp_core.runtime.configure_threads).
``INTERP_CORE_PRECOMPUTE=0`` turns it off (the test suite does, see tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import streamlit as st
import torch

from app_support.attack_controls import DEFAULT_ATTACK, link_settings
from app_support.common import DATASET_LABELS, get_dataset, get_model, model_label
from app_support.lessons import LESSONS, Lesson
from app_support.shared_compute import SharedCompute, server_compute
from app_support.url_state import decode
from interp_core.attacks import ATTACKS, build_attack
from interp_core.services.explore import CleanMapCache, ExploreResult, attack_settings, explore
from interp_core.services.random_start import StartRun, start_comparison

_LOG = logging.getLogger(__name__)
#: The Explore page's explainers when a link names none.
DEFAULT_EXPLAINERS = ["cam", "gradcampp", "saliency", "ig"]
#: The Random start page's steps and seed when a link names none.
START_STEPS, START_SEED = 200, 0
#: The environment variable that turns the start-up precompute off ("0").
PRECOMPUTE_ENV = "INTERP_CORE_PRECOMPUTE"


@st.cache_resource
def clean_map_cache() -> CleanMapCache:
    """The clean images' maps of the cached models, shared by every session: a second attack on
    an image explains only its adversarial image."""
    return CleanMapCache()


def explore_request(x: np.ndarray, y: int | None, caption: str, image_id, class_names: list[str], specs: list[str],
                    attack: str, params: dict, target: int | None, explainers: list[str], trajectory: str,
                    dataset: str) -> dict:
    """The Explore page's request: everything its results depend on. ``x`` (1, C, H, W) float32
    enters by its hash, beside ``caption`` (shown, not part of the results' keys); ``y`` the true
    class as a model class index (None: the clean prediction); the trajectory explainer only when
    it is one of ``explainers``."""
    return dict(image=(caption, hashlib.sha1(x.tobytes()).hexdigest()), y=y, class_names=tuple(class_names),
                specs=tuple(specs), attack=attack, params=tuple(sorted(params.items())), target=target,
                explainers=tuple(explainers), trajectory=trajectory if trajectory in explainers else None,
                dataset=dataset, image_id=image_id)


def explore_key(request: dict, spec: str) -> tuple:
    """The store's key of model ``spec``'s Explore result: the image's hash and every setting."""
    return ("explore", request["image"][1], spec,
            *((k, v) for k, v in request.items() if k not in ("specs", "image")))


def run_model(x: np.ndarray, request: dict, spec: str) -> ExploreResult:
    """The one call into interp_core for one model of an Explore ``request`` (so adding a model to
    the comparison computes only that one). Raises MisclassifiedImage for an attack that needs a
    correctly classified image (ISA). The settings shown are those asked for (not γ while it is
    searched)."""
    attack, params, target = request["attack"], dict(request["params"]), request["target"]
    settings = {k: v for k, v in attack_settings(attack, params).items() if k in params}
    y = request["y"]
    return explore({model_label(spec): get_model(spec)}, torch.from_numpy(x), None if y is None else torch.tensor([y]),
                   build_attack(attack, **params), list(request["explainers"]),
                   attack_info={"name": attack, **settings, "target": target},
                   target=None if target is None else torch.tensor([target]), class_names=request["class_names"],
                   trajectory_explainer=request["trajectory"], goal=ATTACKS[attack].goal,
                   require_correct=ATTACKS[attack].needs_correct, dataset=DATASET_LABELS[request["dataset"]],
                   image_ids=[request["image_id"]], clean_maps=clean_map_cache())


def explore_view(params: dict[str, str]) -> tuple[np.ndarray, dict]:
    """(x, request) of an Explore link (URL parameters) that names a gallery image and the models,
    as a lesson step does; settings it leaves out at the page's defaults. ValueError for a link
    without them, or with a value the page would not take."""
    if params.get("source", "gallery") != "gallery" or "image" not in params or "models" not in params:
        raise ValueError("a precomputed Explore view names a gallery image and its models")
    dataset, split = params.get("dataset", "mnist"), params.get("split", "demo")
    data, class_names = get_dataset(dataset, split), get_dataset(dataset, "demo").class_names
    index, attack = int(params["image"]), params.get("attack", DEFAULT_ATTACK)
    explainers = decode(params["explainers"], []) if "explainers" in params else DEFAULT_EXPLAINERS
    target = params.get("target", "runner-up")
    x = data.images[index:index + 1].numpy()
    return x, explore_request(x, int(data.labels[index]), f"#{index}", index, class_names,
                              decode(params["models"], []), attack, link_settings(attack, dataset, params),
                              None if not ATTACKS[attack].targeted or target == "runner-up"
                              else class_names.index(target),
                              explainers, params.get("trajectory", explainers[0]), dataset)


def comparison(spec: str, dataset: str, index: int, eps: float, steps: int, seed: int) -> dict[str, StartRun]:
    """The Random start page's result: both starts on demo image ``index`` (see start_comparison)."""
    data = get_dataset(dataset, "demo")
    return start_comparison(get_model(spec), data.images[index:index + 1], data.labels[index:index + 1], eps,
                            steps=steps, seed=seed, name=model_label(spec), class_names=data.class_names,
                            dataset=dataset, image_ids=[index])


def start_key(request: tuple) -> tuple:
    """The store's key of a Random start request (spec, dataset, index, eps, steps, seed)."""
    return ("random_start", *request)


def start_view(params: dict[str, str]) -> tuple:
    """The Random start request (spec, dataset, index, eps, steps, seed) of a link that names the
    model, image and ε, as a lesson step does; ValueError for one that does not."""
    if not {"model", "image", "eps"} <= params.keys():
        raise ValueError("a precomputed Random start view names its model, image and eps")
    return (params["model"], params.get("dataset", "mnist"), int(params["image"]), float(params["eps"]),
            int(params.get("steps", START_STEPS)), int(params.get("seed", START_SEED)))


def lesson_views(lesson: Lesson) -> list[tuple[str, tuple, Callable[[], Any]]]:
    """(step title, store key, computation) of every result ``lesson``'s steps show: one per model of
    an Explore step, one per Random start step. ValueError for a step whose link cannot be
    precomputed (see explore_view, start_view)."""
    views = []
    for step in lesson.steps:
        if step.page == "pages/explore.py":
            x, request = explore_view(step.params)
            views += [(step.title, explore_key(request, spec), lambda x=x, r=request, s=spec: run_model(x, r, s))
                      for spec in request["specs"]]
        else:
            request = start_view(step.params)
            views.append((step.title, start_key(request), lambda r=request: comparison(*r)))
    return views


@dataclass
class Precompute:
    """The start-up precompute's progress: ``done`` of ``views`` results in the store after
    ``seconds``; ``failed`` names the views that could not be computed, and why."""

    views: int = 0
    done: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)
    finished: bool = False

    def run(self, lessons: Iterable[Lesson], shared: SharedCompute) -> None:
        """Put every view of ``lessons`` into ``shared``, one after another (a failing view is
        logged and skipped)."""
        started = time.perf_counter()
        try:
            views = [v for lesson in lessons for v in lesson_views(lesson)]
        except ValueError as err:
            self.failed.append(f"the lessons' views: {err}")
            views = []
        self.views = len(views)
        for title, key, compute in views:
            try:
                shared.get(key, compute)
            except Exception as err:  # noqa: BLE001 - one view that fails leaves the others to compute
                self.failed.append(f"{title}: {type(err).__name__}: {err}")
                _LOG.warning("precompute of %r failed: %s", title, err)
            else:
                self.done += 1
            self.seconds = time.perf_counter() - started
        self.finished = True
        _LOG.info("precomputed %d of %d lesson views in %.1f s", self.done, self.views, self.seconds)


@st.cache_resource(show_spinner=False)
def start_precompute() -> Precompute | None:
    """Once per server process: the shipped lessons' views computed into the server's store in a
    background thread (page loads do not wait for it); its progress, or None when
    ``INTERP_CORE_PRECOMPUTE=0``."""
    if os.environ.get(PRECOMPUTE_ENV, "1") == "0":
        return None
    progress = Precompute()
    threading.Thread(target=progress.run, args=(list(LESSONS.values()), server_compute()), daemon=True,
                     name="lesson-precompute").start()
    return progress


def precompute_note() -> str | None:
    """A line on the start-up precompute for the Lesson page (None when it is turned off)."""
    progress = start_precompute()
    if progress is None:
        return None
    failed = f"; not computed: {'; '.join(progress.failed)}" if progress.failed else ""
    if progress.finished:
        return (f"The shipped lessons' views were computed when the server started ({progress.done} of "
                f"{progress.views} results in {progress.seconds:.0f} s): they open at once{failed}.")
    return (f"The shipped lessons' views are being computed since the server started: {progress.done} of "
            f"{progress.views or '…'} results so far{failed}.")
