"""ISA trade-off: discrepancy vs eps under 1-, 2- and all-class measures for one image (the paper's
central picture) with the authors' and the fine step budget, and the 2-class bound scatter for a
batch (interp_core.evaluate). Both come from the server's store (app_support/shared_compute.py):
computed once for every session, in the server's queue."""

import json

import numpy as np
import streamlit as st

from interp_core.attacks import ISA_BUDGETS, ISA_EXPLAINERS
from interp_core.evaluate import bound_evaluation, evaluation_set, isa_evaluation, resolve_targets, tradeoff_text
from interp_core.evaluate.reproduce import tradeoff_figure
from interp_core.interpret import IG_FORMS, LABELS
from interp_core.io import npz_bytes, rows_to_csv
from interp_core.metrics import MEASURES
from interp_core.services import figures
from interp_core.services.explore import MisclassifiedImage, check_correct
from app_support.common import (dataset_picker, export_buttons, full_data_source, get_dataset, get_model, model_label,
                                model_picker, progress_bar)
from app_support.layout import setup_page
from app_support.shared_compute import shared_result

setup_page("ISA trade-off")

MEASURE_LABELS = {"1class": "1-class", "2class": "2-class", "allclass": "all-class"}
BUDGET_LABELS = {name: f"{name}: {b['steps']} steps of {b['step_scale']:g}·ε" for name, b in ISA_BUDGETS.items()}
BUDGET_LABELS["custom"] = "custom steps and step"
TARGET_LABELS = {"authors": "the authors' stream", "random": "random (seeded)", "runner-up": "runner-up"}
SOURCES = {"tradeoff": "the authors' trade-off images (seed 52, positions 37–41)", "split": "an image of the split"}

st.title("ISA: can an attack hide from the interpretation?")
st.markdown("The interpretability sneaking attack (ISA) flips the prediction to a target class t while keeping "
            "the map close: it minimizes margin + γ·D within the ε-ball, γ as large as still succeeds "
            "(`docs/method.md#isa`). Under the **2-class** measure on CAM, D cannot fall below the bound "
            "½·h·w·(Z_y − Z_t) (`docs/method.md#bound`); the **1-class** measure "
            "has no such floor. How far the curves move depends on the step budget: the authors take 10 soft-sign "
            "steps of 0.2·ε, the fine budget 100 steps of 0.02·ε. Each run states what it measured.")


@st.cache_resource(show_spinner="Loading the authors' trade-off images…")
def tradeoff_images(dataset: str):
    """The authors' trade-off set (test split) and its description."""
    return evaluation_set(dataset, "test", subset="tradeoff")


def image_source(dataset: str, split: str, source: str):
    """(images, authors' set name or None, description) of the chosen image source."""
    if source == "tradeoff":
        data, what = tradeoff_images(dataset)
        return data, "tradeoff", what
    data = get_dataset(dataset, split)
    # the demo images are the authors' seed-99 subset in order, so their targets follow that stream
    return data, "paper" if split == "demo" else None, f"{dataset} {split}"


def tradeoff(spec: str, dataset: str, split: str, source: str, index: int, measures: tuple, explainer: str,
             ig_form: str, multipliers: tuple, rounds: int, targets: str, seed: int, steps: int,
             step_scale: float) -> dict:
    """ISA trade-off curves of one image with one step budget, one per attack measure: {"result"
    (the ``ISAResult``), "x" (the image, (1, C, H, W)), "y" (its label), "model" (its label)}."""
    data, subset, what = image_source(dataset, split, source)
    model = get_model(spec)
    x, y = data.images[index:index + 1], data.labels[index:index + 1]
    if targets == "authors":  # the stream runs over the whole set in order
        target = resolve_targets(targets, subset, model, data.images, data.labels, seed)[index:index + 1]
    else:
        target = resolve_targets(targets, "first", model, x, y, seed)
    options = {"form": ig_form} if explainer == "ig" else None
    with progress_bar(f"ISA searches ({steps} steps of {step_scale:g}·ε), measure") as tick:
        result = isa_evaluation(model, x, y, measures, explainer=explainer, multipliers=multipliers, targets=target,
                                rounds=rounds, explainer_options=options, steps=steps, step_scale=step_scale,
                                subset=f"{what}, image #{index}", targets_label=TARGET_LABELS[targets],
                                progress=tick)
    return {"result": result, "x": x.numpy(), "y": int(y[0]), "model": model_label(spec)}


def bound_scatter(spec: str, dataset: str, split: str, n: int, rounds: int, targets: str, seed: int) -> dict:
    """Minimum-eps attacks on the first n images of the authors' seed-99 subset and the bound's two
    sides: {"result" (the ``BoundResult``), "model" (its label)}."""
    data, what = evaluation_set(dataset, split, n=n, subset="paper")
    model = get_model(spec)
    target = resolve_targets(targets, "paper", model, data.images, data.labels, seed)
    with progress_bar("minimum-ε attacks, batch") as tick:
        result = bound_evaluation(model, data.images, data.labels, target, rounds=rounds, subset=what,
                                  targets_label=TARGET_LABELS[targets], progress=tick)
    return {"result": result, "model": model_label(spec)}


dataset, split = dataset_picker("isa")
specs = model_picker(dataset, "isa", multiple=False)
with st.sidebar.expander("ISA settings", expanded=True):
    sources = ["tradeoff", "split"] if full_data_source(dataset) else ["split"]
    source = st.radio("Images", sources, format_func=SOURCES.get, key="isa_source",
                      help="the authors' figure uses five test images: positions 37–41 of numpy seed 52's "
                           "permutation (needs the full test set)")
    data, subset, _ = image_source(dataset, split, source)
    index = st.number_input(f"Image index (0–{len(data) - 1})", 0, len(data) - 1, 0, key="isa_index")
    measures = st.multiselect("Attack measures", MEASURES, default=list(MEASURES), format_func=MEASURE_LABELS.get,
                              key="isa_measures")
    explainer = st.selectbox("Map", ISA_EXPLAINERS, format_func=LABELS.get, key="isa_explainer")
    ig_form = st.radio("IG form", IG_FORMS, key="isa_ig_form", horizontal=True, disabled=explainer != "ig",
                       help="display: summed over colour channels; authors: every channel, on the softplus (β = 1) "
                            "copy of the network, to attack and to report")
    multipliers = st.multiselect("ε = p · ε_min for p in", [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0],
                                 default=[1.0, 1.5, 2.0, 3.0, 4.0], key="isa_mult")
    rounds = st.slider("Search rounds (bisection)", 2, 10, 10, key="isa_rounds")
    budgets = st.multiselect("Step budgets", list(BUDGET_LABELS), default=list(ISA_BUDGETS),
                             format_func=BUDGET_LABELS.get, key="isa_budgets",
                             help="every search of the attack takes these steps; both budgets move x' by at most "
                                  "2·ε in total")
    if "custom" in budgets:
        c1, c2 = st.columns(2)
        custom_steps = int(c1.number_input("steps", 1, 500, 30, key="isa_custom_steps"))
        custom_scale = float(c2.number_input("step (share of ε)", 0.001, 1.0, 0.05, format="%.3f",
                                             key="isa_custom_scale"))
    target_choices = ["authors", "random", "runner-up"] if subset else ["random", "runner-up"]
    targets = st.radio("Target t", target_choices, format_func=TARGET_LABELS.get, horizontal=True,
                       key="isa_targets",
                       help="the authors' stream: numpy (y + 1 + randint(K − 1)) % K drawn right after their image "
                            "set's permutation, image by image as their code (the trade-off images, or the demo "
                            "images, which are their seed-99 subset); random: a seeded random wrong class; "
                            "runner-up: the clean image's highest-scoring wrong class")
    seed = int(st.number_input("Seed of random targets", 0, 2**31 - 1, 0, key="isa_seed",
                               disabled=targets != "random"))
    n_bound = st.slider("Bound scatter: images", 5, 100, 20, step=5, key="isa_n")

budget_steps = {name: (b["steps"], b["step_scale"]) for name, b in ISA_BUDGETS.items()}
if "custom" in budgets:
    budget_steps["custom"] = (custom_steps, custom_scale)

tab_curve, tab_bound = st.tabs(["Trade-off for one image", "Bound scatter for a batch"])
with tab_curve:
    c1, c2 = st.columns([1, 5])
    c1.image(figures.panels_image([(f"#{index}", [(f"true {data.class_names[int(data.labels[index])]}",
                                                    figures.image_rgb(data.images[index].numpy()))], None)], 112))
    c2.markdown(f"Model **{specs[0] if specs else '—'}**; target t: {TARGET_LABELS[targets]}. "
                "The search finds ε_min (the smallest ε that reaches t with γ = 0; the curve's first point), then "
                "at each ε = p·ε_min the largest γ that still reaches t. Points are real successes.")
    view = st.radio("View", ["raw", "range"], horizontal=True, key="isa_view",
                    format_func={"raw": "raw D against nominal ε, with the bound (the authors' figure)",
                                 "range": "range-normalized D against the actual ‖δ‖∞"}.get)
    envelope = st.checkbox("Running minimum over smaller ε (the authors' curves)", value=True, key="isa_envelope")
    ready = bool(specs and measures and multipliers and budgets)
    if st.button("Run ISA", type="primary", disabled=not ready, key="isa_run"):
        st.session_state["isa_request"] = dict(spec=specs[0], dataset=dataset, split=split, source=source,
                                               index=int(index), measures=tuple(measures), explainer=explainer,
                                               ig_form=ig_form, multipliers=tuple(sorted(multipliers)),
                                               rounds=int(rounds), targets=targets, seed=seed)
        st.session_state["isa_budgets_run"] = {name: budget_steps[name] for name in budgets}
    request = st.session_state.get("isa_request")
    if request:
        shown, _, _ = image_source(request["dataset"], request["split"], request["source"])
        i = request["index"]
        try:  # ISA needs an image the model gets right, as in the paper
            check_correct(get_model(request["spec"]), shown.images[i:i + 1], shown.labels[i:i + 1],
                          shown.class_names, model_label(request["spec"]))
        except MisclassifiedImage as err:
            st.error(str(err))
            request = None
    if request:
        results = {name: shared_result(("isa_tradeoff", *sorted(request.items()), steps, scale),
                                       lambda s=steps, c=scale: tradeoff(**request, steps=s, step_scale=c))
                   for name, (steps, scale) in st.session_state["isa_budgets_run"].items()}
        request = None if None in results.values() else request  # None: the server is busy (its notice is shown)
    if request:
        panels = [(f"{name} budget ({r['result'].protocol['steps']} × {r['result'].protocol['step_scale']:g}·ε)",
                   r["result"]) for name, r in results.items()]
        st.plotly_chart(tradeoff_figure(panels, view, envelope, columns=len(panels)), key="isa_curves")
        rows = []
        for name, r in results.items():
            st.markdown(f"**{name} budget** — " + " ".join(tradeoff_text(r["result"], view).splitlines()))
            for c in r["result"].curves:
                rows += [{"budget": name, "measure": MEASURE_LABELS[c["measure"]], "ε_min": f"{c['eps_min'][0]:.4f}",
                          "p": p["multiplier"], "γ": f"{p['gamma']:.3g}", "ε": f"{p['eps']:.4f}",
                          "‖δ‖∞": f"{p['linf']:.4f}", "raw D": f"{p['raw']:.4g}", "range D": f"{p['range']:.4f}",
                          "bound": "" if c["bound"][0] is None else f"{c['bound'][0]:.4g}"} for p in c["points"]]
        if rows:
            st.table(rows)
        else:
            skipped = next(iter(results.values()))["result"].curves[0]["skipped"][0]
            st.warning(f"No successful ISA point for this image ({skipped}).")
        first = next(iter(results.values()))
        protocol = ", ".join(f"{k}={v}" for k, v in first["result"].protocol.items()
                             if k not in ("steps", "step_scale", "step_size", "budget"))
        seconds = sum(r["result"].seconds for r in results.values())
        st.caption(f"{first['model']} · {first['result'].subset} · {protocol} · {seconds:.1f} s")
        export_buttons("isa", csv=rows_to_csv(rows),
                       json=json.dumps({name: {**r["result"].to_dict(), "y": r["y"], "model": r["model"]}
                                        for name, r in results.items()}, indent=1, default=float),
                       npz=npz_bytes(x=first["x"], y=np.array([first["y"]])), stem="isa-tradeoff")

with tab_bound:
    st.markdown("For each correctly classified image of the authors' seed-99 subset, a minimum-ε targeted attack "
                "toward the target class t; then D2 of CAM/(h·w) against ½(Z_y(x) − Z_t(x)). Every point must lie on "
                "or above the diagonal.")
    if st.button("Run bound check", type="primary", disabled=not specs, key="isa_bound_run"):
        st.session_state["isa_bound_request"] = dict(spec=specs[0], dataset=dataset, split=split, n=int(n_bound),
                                                     rounds=int(rounds), targets=targets, seed=seed)
    request = st.session_state.get("isa_bound_request")
    if request:
        result = shared_result(("isa_bound", *sorted(request.items())), lambda: bound_scatter(**request))
    if request and result is not None:  # None: the server is busy (its notice is shown)
        bound, points = result["result"], result["result"].points
        st.plotly_chart(figures.bound_scatter_figure([p["half_margin"] for p in points], [p["d2"] for p in points]),
                        key="isa_bound")
        st.metric("Points below the diagonal (bound violations)", bound.violations,
                  help=f"of {len(points)} successful attacks on {bound.attempted} correctly classified images")
        export_buttons("isa_bound", csv=rows_to_csv(points),
                       json=json.dumps({**bound.to_dict(), "model": result["model"]}, indent=1, default=float),
                       stem="bound-scatter")
