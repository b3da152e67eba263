"""Train: a small model in a background process (interp_core.services.jobs), live curves, a stop button.

Jobs live on disk (runs/<job id>/), so a run survives page reloads and shows its state to every
later visit; a finished run's checkpoint appears in every model picker.
"""

import json

import streamlit as st

from interp_core.services import figures, jobs
from interp_core.models import ARCHITECTURES
from interp_core.training import ADVERSARIAL, DEFAULT_GAMMA, PRESETS, TRAINING_METHODS
from interp_core.io import rows_to_csv
from app_support.common import DATASET_LABELS, export_buttons, full_data_source
from app_support.layout import setup_page

setup_page("Train")

HISTORY_FIELDS = ("step", "epoch", "loss", "accuracy", "eps", "images_per_s")
PRESET = "cpu"  # the reduced schedule of the shipped checkpoints, sized for a CPU
STATE_ICONS = {"running": ":material/hourglass_top:", "finished": ":material/check_circle:",
               "stopped": ":material/stop_circle:", "failed": ":material/error:"}

st.title("Train a model")
st.caption(f"Runs execute in a background process with one CPU thread, at most {jobs.MAX_RUNNING} at once, "
           f"≤ {jobs.MAX_EPOCHS} epochs and ≤ {jobs.MAX_SUBSET:,} images each. They keep running when you "
           "close the page.")

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("Method", list(TRAINING_METHODS), index=list(TRAINING_METHODS).index("int"),
                          key="train_method",
                          help="PAPER.md §6: normal, PGD-AT, TRADES, IG-norm, IG-sum-norm and the Int family")
    dataset = c2.selectbox("Dataset", list(DATASET_LABELS), format_func=DATASET_LABELS.get, key="train_dataset")
    arch = c3.selectbox("Architecture", list(ARCHITECTURES), key="train_arch")
    preset = PRESETS[PRESET][dataset]
    full = full_data_source(dataset) is not None
    c1, c2, c3 = st.columns(3)
    split = c1.radio("Training images", ["train", "demo"] if full else ["demo"], key="train_split",
                     format_func={"train": "training set", "demo": "demo sample (300, offline)"}.get,
                     help=None if full else "The full training set was not found; the demo sample is used.")
    demo = split == "demo"
    subset = c2.number_input("Subset (images)", 50, 300 if demo else jobs.MAX_SUBSET, 300 if demo else 2000, step=50,
                             key=f"train_subset_{split}")
    epochs = c3.number_input("Epochs", 1, jobs.MAX_EPOCHS, 1, key="train_epochs")
    c1, c2, c3 = st.columns(3)
    eps = c1.number_input("Training ε", 0.0, 1.0, float(preset["eps"]), format="%.4f", key=f"train_eps_{dataset}",
                          help="ramped up from 0 during training; ignored by 'normal'")
    steps = c2.number_input("Inner attack steps", 1, 40, int(preset["steps"]), key=f"train_steps_{dataset}")
    gamma = c3.number_input("γ (regularizer weight)", 0.0, 10.0, float(DEFAULT_GAMMA[method]), format="%.4g",
                            key=f"train_gamma_{method}", help="TRADES β, IG λ, Int γ")
    started = st.button("Start training", type="primary", key="train_start")

if started:
    config = {"method": method, "dataset": dataset, "arch": arch, "preset": PRESET, "epochs": int(epochs),
              "subset": int(subset), "train_split": split,
              "eval_split": "demo" if demo else "heldout", "eval_n": 100, "eval_steps": 20,
              "batch_size": 50}
    if method in ADVERSARIAL:
        config |= {"eps": float(eps), "steps": int(steps)}
    if DEFAULT_GAMMA[method] > 0:
        config["gamma"] = float(gamma)
    try:
        st.session_state["train_job"] = jobs.start_job(config)
    except ValueError as err:
        st.error(f"Not started: {err}")

all_jobs = jobs.list_jobs()
if not all_jobs:
    st.info("No training runs yet.")
    st.stop()
ids = [j["id"] for j in all_jobs]
mine = st.session_state.get("train_job")
default = mine if mine in ids else next((j["id"] for j in all_jobs if j["state"] == "running"), ids[0])
states = {j["id"]: j for j in all_jobs}
chosen = st.selectbox("Run", ids, index=ids.index(default), key="train_view",
                      format_func=lambda i: f"{i} · {states[i]['state']} · {states[i]['config']['method']} "
                                            f"on {states[i]['config']['dataset']}")


@st.fragment(run_every=2)
def job_view(job_id: str) -> None:
    """Live status of one job, refreshed every 2 s without rerunning the page."""
    status = jobs.job_status(job_id)
    st.markdown(f"**{STATE_ICONS[status['state']]} {status['state']}** — {status['message']}")
    if status["total_steps"] and status["history"]:
        done = status["history"][-1]["step"]
        st.progress(min(done / status["total_steps"], 1.0), text=f"step {done} of {status['total_steps']}")
    if status["state"] == "running":
        if st.button("Stop", key=f"stop_{job_id}"):
            jobs.stop_job(job_id)
    history = status["history"]
    if history:
        steps = [h["step"] for h in history]
        c1, c2, c3 = st.columns(3)
        c1.plotly_chart(figures.curves_figure({"loss": (steps, [h["loss"] for h in history])}, "step", "loss"),
                        key=f"loss_{job_id}")
        c2.plotly_chart(figures.curves_figure({"accuracy": (steps, [h["accuracy"] for h in history])}, "step",
                                               "batch accuracy", (0, 1)), key=f"acc_{job_id}")
        c3.plotly_chart(figures.curves_figure({"ε": (steps, [h["eps"] for h in history])}, "step", "training ε"),
                        key=f"eps_{job_id}")
        st.caption(f"{history[-1]['images_per_s']:.0f} images/s")
    if status["state"] != "running":
        if status["checkpoint"]:
            st.success(f"Checkpoint `{status['checkpoint']}` — it is listed in every model picker (source: user).")
        if status["metrics"]:
            st.json(status["metrics"], expanded=False)
        export_buttons(f"train_{job_id}", csv=rows_to_csv([{k: h[k] for k in HISTORY_FIELDS} for h in history]),
                       json=json.dumps(status, indent=1), stem=job_id)
        if states[job_id]["state"] == "running":
            st.rerun()  # the job just ended: refresh the run list and the model pickers


job_view(chosen)
with st.expander("Settings of this run"):
    st.json(states[chosen]["config"])
