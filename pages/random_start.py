"""Random start: the authors' PGD (start at the clean image) and the same attack from one random
point of the eps-ball, side by side on one image and model, with the maps and the measured reason
why a start at x can stall (interp_core.services.random_start). The result comes from the server's
store (app_support/shared_compute.py), computed as a lesson's slides and the start-up precompute
compute it (app_support/explore_runs.start_job)."""

import functools

import streamlit as st

from app_support.common import DATASET_LABELS, get_dataset, model_label, model_table
from app_support.explore_runs import START_FIELDS, START_IMAGES, start_defaults, start_job
from app_support.layout import setup_page
from app_support.shared_compute import shared_figure, shared_result, show_shared_image
from app_support.url_state import Link
from interp_core.services import figures
from interp_core.services.explore import goal_readout
from interp_core.services.random_start import STARTS, side_by_side, trace_figure

setup_page("Random start")


def apply_link(link: Link, params: dict[str, str]) -> bool:
    """A link's settings into the widgets' state; whether it asks for the results (run=1)."""
    take = functools.partial(link.take, params)
    dataset = take("dataset", "start_dataset", options=list(DATASET_LABELS)) or st.session_state.get(
        "start_dataset", "mnist")
    take("model", f"start_model_{dataset}", options=[m["name"] for m in model_table(dataset)])
    for name, (like, allowed, key) in START_FIELDS.items():
        take(name, key.format(dataset=dataset), like=like, options=allowed)
    return params.get("run") == "1"


def start_panel(label: str, run, key: tuple) -> None:
    """One start: whether the label survived, and the clean and attacked images (drawn once per
    server for the request ``key``)."""
    m = run.result.models[0]
    st.markdown(f"#### {label}")
    (st.success if m.goal_reached[0] else st.warning)(goal_readout(run.result, 0))  # as on Explore
    title, captions = figures.summary_text(run.result, 0, with_model=False)
    show_shared_image(("start", key, label, "summary"), lambda: figures.model_summary_image(
        run.result, 0, with_model=False), alt=f"{title}: " + "; ".join(captions))


def numbers_table(runs: dict) -> list[dict]:
    """One row per start: the readout and the measured numbers of its trace (image 0)."""
    return [{"start": label, "readout": goal_readout(run.result, 0),
             "cross-entropy at the end": f"{run.trace.loss[-1, 0]:.3g}",
             "steps cancelled by the box": f"{run.trace.step_mean('box_blocked')[0]:.0%}",
             "pixels changed per step": f"{run.trace.step_mean('moved')[0]:.0%}"} for label, run in runs.items()]


st.title("Robust, or an attack that stalls?")
st.markdown(
    "The authors measure robust accuracy with PGD that **starts at the clean image x** and takes 200 signed "
    "steps of 0.01. A network can survive that attack without being robust: if the first steps lead nowhere, "
    "the attack never leaves x. On MNIST most pixels are exactly 0, and where the gradient points below 0 the "
    "[0, 1] box cancels the step. The same attack from **one random point of the ε-ball** does not stall. "
    "Compare the two below: same network, image, ε, steps and step size.")

link = Link("random_start")
incoming = link.incoming()
auto_run = apply_link(link, incoming) if incoming else False
if link.ignored:
    st.warning("Some settings of the link were not used: " + "; ".join(link.ignored))

dataset = st.sidebar.radio("Dataset", list(DATASET_LABELS), format_func=DATASET_LABELS.get, key="start_dataset",
                           horizontal=True)
names = [m["name"] for m in model_table(dataset)]
# defaults go into the widgets' state (not their arguments), so that a link's values never clash with them
defaults = start_defaults(dataset, names)
st.session_state.setdefault(f"start_model_{dataset}", defaults["model"])
for name, (_, _, key) in START_FIELDS.items():
    st.session_state.setdefault(key.format(dataset=dataset), defaults[name])
spec = st.sidebar.selectbox("Model", names, key=f"start_model_{dataset}")
index = st.sidebar.number_input("Demo image #", 0, START_IMAGES - 1, key="start_image")
eps = st.sidebar.number_input("ε (ℓ∞)", 0.001, 1.0, step=0.01, format="%.4f", key=f"start_eps_{dataset}")
steps = st.sidebar.number_input("Steps of 0.01", 1, 1000, key="start_steps")
seed = st.sidebar.number_input("Seed of the random start", 0, 2**31 - 1, key="start_seed")

data = get_dataset(dataset, "demo")
st.caption(f"{DATASET_LABELS[dataset]} demo image #{index}: a {data.class_names[int(data.labels[index])]}")
request = (spec, dataset, int(index), float(eps), int(steps), int(seed)) if spec else None
if st.button("Run both attacks", type="primary", disabled=request is None, key="start_run") or (auto_run and request):
    st.session_state["start_request"] = request
showing = request is not None and st.session_state.get("start_request") == request
# before the results: a class that follows this session starts on them at once
link.write({"dataset": dataset, "model": spec, "image": int(index), "eps": float(eps), "steps": int(steps),
            "seed": int(seed), "run": 1 if showing else None})
runs = None
if not spec:
    st.info(f"No {DATASET_LABELS[dataset]} model found; train one on the Train page.")
elif st.session_state.get("start_request") is not None and not showing:
    st.info("The settings changed since the last run: press **Run both attacks** to see their results.")
elif showing:
    with st.spinner("Running both attacks…"):
        runs = shared_result(*start_job(request))
if runs is not None:
    st.caption(f"Results for: {DATASET_LABELS[dataset]} #{index} · {model_label(spec)} · eps={eps:g}, "
               f"steps={steps}, step_size=0.01, seed={seed}")
    for col, (label, run) in zip(st.columns(len(runs)), runs.items()):
        with col:
            start_panel(label, run, request)
    st.table(numbers_table(runs))
    st.caption("Cross-entropy: the loss of the true class that the attack climbs (a stalled attack leaves it near "
               "its clean value). Steps cancelled by the box: the share of pixels, averaged over the steps, whose "
               "signed step points out of [0, 1] where the image already sits on 0 or 1, so clipping undoes it. "
               "Pixels changed per step: the share that an update actually moved.")
    authors, random = (runs[label] for label in STARTS)
    kept = not authors.result.models[0].goal_reached[0]
    flipped = random.result.models[0].goal_reached[0]
    blocked = [r.trace.step_mean("box_blocked")[0] for r in (authors, random)]
    losses = [r.trace.loss[-1, 0] for r in (authors, random)]
    verdict = ("The authors' attack leaves the label and one random start flips it: the accuracy the authors' "
               "attack reports here measures the attack, not the network." if kept and flipped else
               "Here both starts end the same way: this image does not show the difference; try another "
               "image or ε (MNIST #8 at ε 0.35 on the Int network does).")
    st.markdown(f"**Why.** From x, the box cancels the step on {blocked[0]:.0%} of the pixels (averaged over "
                f"the steps) and the cross-entropy ends at {losses[0]:.3g}; from the random start it cancels "
                f"{blocked[1]:.0%} and the cross-entropy reaches {losses[1]:.3g}. {verdict}")
    st.plotly_chart(shared_figure(("start", request, "trace"), lambda: trace_figure(runs)), key="start_trace")
    st.subheader("Interpretation maps (true class, one colour scale)")
    show_shared_image(("start", request, "maps"), lambda: figures.maps_figure(side_by_side(runs), "cam", shared=True))
    st.caption("Rows: the two starts; columns: clean CAM, CAM of the attacked image, and their difference. "
               "A map that did not move is no evidence of a robust network when the attack did not move either.")
