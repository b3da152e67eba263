"""ISA trade-off: discrepancy vs eps under 1-, 2- and all-class measures for one image (the paper's
central picture), and the 2-class bound scatter for a batch (interp_core.evaluate)."""

import json

import numpy as np
import streamlit as st

from interp_core.services import figures
from interp_core.attacks import ISA_EXPLAINERS
from interp_core.evaluate import bound_evaluation, isa_evaluation
from interp_core.interpret import LABELS
from interp_core.io import npz_bytes, rows_to_csv
from interp_core.metrics import MEASURES
from app_support.common import (dataset_picker, export_buttons, get_dataset, get_model, model_label, model_picker,
                              progress_bar)
from app_support.layout import setup_page

setup_page("ISA trade-off")

MEASURE_LABELS = {"1class": "1-class", "2class": "2-class", "allclass": "all-class"}

st.title("ISA: can an attack hide from the interpretation?")
st.markdown("The interpretability sneaking attack (ISA) flips the prediction to a target class t while keeping "
            "the map close: it minimizes margin + γ·D within the ε-ball, γ as large as still succeeds. Under the "
            "**1-class** measure D falls toward 0 as ε grows; under the **2-class** measure it levels off above the "
            "floor ½(Z_y − Z_t) (PAPER.md §4–5).")


@st.cache_data(show_spinner=False, max_entries=64)
def tradeoff(spec: str, dataset: str, split: str, index: int, measures: tuple, explainer: str, multipliers: tuple,
             rounds: int, targets: str) -> dict:
    """ISA trade-off curves of one image, one per attack measure; cached by every setting."""
    data = get_dataset(dataset, split)
    x, y = data.images[index:index + 1], data.labels[index:index + 1]
    with progress_bar("ISA searches, measure") as tick:
        result = isa_evaluation(get_model(spec), x, y, measures, explainer=explainer, multipliers=multipliers,
                                rounds=rounds, targets=targets, subset=f"{dataset} {split} image #{index}",
                                progress=tick)
    return result | {"x": x.numpy(), "y": int(y[0]), "model": model_label(spec)}


@st.cache_data(show_spinner=False, max_entries=64)
def bound_scatter(spec: str, dataset: str, split: str, n: int, rounds: int, targets: str) -> dict:
    """Minimum-eps attacks on the first n images and the bound's two sides; cached."""
    data = get_dataset(dataset, split)
    with progress_bar("minimum-ε attacks, batch") as tick:
        result = bound_evaluation(get_model(spec), data.images[:n], data.labels[:n], targets=targets, rounds=rounds,
                                  subset=f"first {n} of {dataset} {split}", progress=tick)
    return result | {"model": model_label(spec)}


dataset, split = dataset_picker("isa")
specs = model_picker(dataset, "isa", multiple=False)
data = get_dataset(dataset, split)
with st.sidebar.expander("ISA settings", expanded=True):
    index = st.number_input(f"Image index (0–{len(data) - 1})", 0, len(data) - 1, 0, key="isa_index")
    measures = st.multiselect("Attack measures", MEASURES, default=list(MEASURES), format_func=MEASURE_LABELS.get,
                              key="isa_measures")
    explainer = st.selectbox("Map", ISA_EXPLAINERS, format_func=LABELS.get, key="isa_explainer")
    multipliers = st.multiselect("ε = p · ε_min for p in", [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0],
                                 default=[1.0, 1.5, 2.0, 3.0, 4.0], key="isa_mult")
    rounds = st.slider("Search rounds (bisection)", 2, 10, 10, key="isa_rounds")
    targets = st.radio("Target t", ["runner-up", "random"], horizontal=True, key="isa_targets",
                       help="runner-up: the clean image's highest-scoring wrong class; random: a seeded random "
                            "class other than y")
    n_bound = st.slider("Bound scatter: images", 5, 100, 20, step=5, key="isa_n")

tab_curve, tab_bound = st.tabs(["Trade-off for one image", "Bound scatter for a batch"])
with tab_curve:
    c1, c2 = st.columns([1, 5])
    c1.image(figures.panels_image([(f"#{index}", [(f"true {data.class_names[int(data.labels[index])]}",
                                                    figures.image_rgb(data.images[index].numpy()))], None)], 112))
    c2.markdown(f"Model **{specs[0] if specs else '—'}**; target t: {targets} class. "
                "The search finds ε_min (smallest ε that reaches t with γ = 0), then at each ε = p·ε_min the "
                "largest γ that still reaches t. Points are real successes; y = range-normalized discrepancy "
                "of the attack's own measure, x = the actual ‖δ‖∞.")
    if st.button("Run ISA", type="primary", disabled=not (specs and measures and multipliers), key="isa_run"):
        st.session_state["isa_request"] = dict(spec=specs[0], dataset=dataset, split=split, index=int(index),
                                               measures=tuple(measures), explainer=explainer,
                                               multipliers=tuple(sorted(multipliers)), rounds=int(rounds),
                                               targets=targets)
    request = st.session_state.get("isa_request")
    if request:
        result = tradeoff(**request)
        curves = {MEASURE_LABELS[c["measure"]]: ([p["linf"] for p in c["points"]],
                                                 [p["discrepancy"] for p in c["points"]]) for c in result["curves"]}
        fig = figures.curves_figure(curves, "‖δ‖∞", "range-normalized discrepancy")
        st.plotly_chart(fig, key="isa_curves")
        rows = [{"measure": MEASURE_LABELS[c["measure"]], "ε_min": f"{c['eps_min'][0]:.4f}", "p": p["multiplier"],
                 "γ": f"{p['gamma']:.3g}", "‖δ‖∞": f"{p['linf']:.4f}",
                 **{MEASURE_LABELS[m]: f"{p[m]:.4f}" for m in MEASURES}} for c in result["curves"] for p in c["points"]]
        if rows:
            st.table(rows)
        else:
            st.warning("No successful ISA point for this image (the minimum-ε search found no ε ≤ 1).")
        protocol = ", ".join(f"{k}={v}" for k, v in result["protocol"].items())
        st.caption(f"{result['model']} · {result['subset']} · {protocol} · {result['seconds']:.1f} s")
        export_buttons("isa", csv=rows_to_csv(rows), json=json.dumps({k: v for k, v in result.items() if k != "x"},
                                                                   indent=1, default=float),
                       npz=npz_bytes(x=result["x"], y=np.array([result["y"]])),
                       stem="isa-tradeoff")

with tab_bound:
    st.markdown("For each correctly classified image, a minimum-ε targeted attack toward the target class t; "
                "then D2 of CAM/(h·w) against ½(Z_y(x) − Z_t(x)). Every point must lie on or above the diagonal.")
    if st.button("Run bound check", type="primary", disabled=not specs, key="isa_bound_run"):
        st.session_state["isa_bound_request"] = dict(spec=specs[0], dataset=dataset, split=split, n=int(n_bound),
                                                     rounds=int(rounds), targets=targets)
    request = st.session_state.get("isa_bound_request")
    if request:
        result = bound_scatter(**request)
        points = result["points"]
        st.plotly_chart(figures.bound_scatter_figure([p["half_margin"] for p in points], [p["d2"] for p in points]),
                        key="isa_bound")
        st.metric("Points below the diagonal (bound violations)", result["violations"],
                  help=f"of {len(points)} successful attacks on {result['attempted']} correctly classified images")
        export_buttons("isa_bound", csv=rows_to_csv(points), json=json.dumps(result, indent=1, default=float),
                       stem="bound-scatter")
