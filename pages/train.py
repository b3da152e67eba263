"""Train: a model, or a compare of two methods, in background processes (interp_core.services.jobs):
live curves, stop / resume, and when a run ends its automatic evaluation beside the paper networks.

Jobs live on disk (runs/<job id>/), so a run survives page reloads and shows its state to every
later visit; a finished run's checkpoint appears in every model picker, a stopped one does not.
"""

import json

import pandas as pd
import streamlit as st

from interp_core.datasets import DATASETS
from interp_core.evaluate import SIGN_WORDS
from interp_core.models import ARCHITECTURES
from interp_core.io import rows_to_csv
from interp_core.services import figures, jobs
from interp_core.training import ADVERSARIAL, DEFAULT_GAMMA, FREE_METHODS, PRESETS, TRAINING_METHODS, make_config
from app_support.common import DATASET_LABELS, export_buttons, full_data_source, get_dataset, model_table
from app_support.layout import setup_page

setup_page("Train")

HISTORY_FIELDS = ("step", "epoch", "loss", "accuracy", "eps", "images_per_s")
STATE_ICONS = {"running": ":material/hourglass_top:", "evaluating": ":material/query_stats:",
               "finished": ":material/check_circle:", "stopped": ":material/stop_circle:",
               "failed": ":material/error:"}
PRESET_LABELS = {"classroom": "classroom (a compare in minutes)", "fast": "fast (one-step inner attack)",
                 "free": "free (each batch replayed m times)", "cpu": "cpu (the shipped project models)",
                 "paper": "paper (the authors' schedule)"}
#: What the classroom compare measured (benchmarks/RESULTS.md, "Classroom compare"); shown under the preset.
CLASSROOM_NOTE = ("Measured on the project's 2-core machine with another training job beside: normal vs int with this "
                  "preset's defaults on the training set ended in 84 s, evaluation included, at 0.948 and 0.935 clean "
                  "accuracy on the whole test set. On 30 images, int kept 0.833 accuracy at ε = 0.1 under the "
                  "re-test against 0.200 for normal, and its AAI Kendall τ at ε = 0.1 was 0.874 against 0.743.")
#: The fast preset's cost, from the step-cost benchmark (benchmarks/RESULTS.md, "Training step cost per method").
FAST_NOTE = ("One inner step of 1.25 ε from a random start instead of 10: measured on one thread (MNIST smallgap, batch "
             "50), a pgd-at step costs 1.62 normal steps instead of 7.52, an int step 2.8 instead of 8.96. The run "
             "checks random-start PGD accuracy on 200 training images before each checkpoint and stops if it "
             "collapses (catastrophic overfitting), keeping the checkpoint from before.")
#: The free preset's cost, from the same benchmark ("pgd-at (free preset, one replay)").
FREE_NOTE = ("Free adversarial training (Shafahi et al. 2019): each batch is trained on m times in a row, and the "
             "backward pass of every replay also moves the perturbation one step of ε, carried on to the next replay "
             "and batch. Measured on one thread (MNIST smallgap, batch 50), a replay costs 1.07 normal steps "
             "(a pgd-at step with 10 inner steps: 7.52), and a run of E epochs makes the steps of E normal epochs, "
             "seeing the images E/m times. The catastrophic-overfitting check of the fast preset runs too.")
#: Offline runs train on the demo sample's images after the paper subset: all of them, 20 epochs of small batches.
DEMO_DEFAULTS = {"epochs": jobs.MAX_EPOCHS, "batch_size": 20}
DEMO_NOTE = ("Offline, the demo sample is split: its first 200 images (the paper's seed-99 evaluation subset) "
             "are held out for the evaluation, and runs train on the other 100. Expect a weak model: 100 images.")


def eps_label(eps: float, dataset: str) -> str:
    """An eps in the dataset's units, rounded to a whole k/255 on CIFAR-10 (a typed 0.0314 reads 8/255)."""
    scale = DATASETS[dataset].eps_scale
    return f"{eps * scale:.0f}/{scale}" if scale != 1 else f"{eps:g}"


st.title("Train a model")
st.caption(f"Runs execute in background processes with one CPU thread each, at most {jobs.MAX_RUNNING} at once, "
           f"≤ {jobs.MAX_EPOCHS} epochs and ≤ {jobs.MAX_SUBSET:,} images each. They keep running when you close "
           "the page. When a run ends it is evaluated (clean accuracy, the authors' PGD over the ε grid, AAI "
           "Kendall τ) and shown beside the paper's networks. Methods: docs/method.md, “Training methods”.")

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("Method", list(TRAINING_METHODS), index=list(TRAINING_METHODS).index("int"),
                          key="train_method")
    dataset = c2.selectbox("Dataset", list(DATASET_LABELS), format_func=DATASET_LABELS.get, key="train_dataset")
    arch = c3.selectbox("Architecture", list(ARCHITECTURES), key="train_arch")
    offered = [p for p in PRESET_LABELS if dataset in PRESETS[p] and (p != "free" or method in FREE_METHODS)]
    preset_name = st.radio("Preset", offered, format_func=PRESET_LABELS.get, key="train_preset", horizontal=True,
                           help="classroom (MNIST): small ε, 3 short epochs with one inner step; fast: the cpu schedule with one "
                                "inner step of 1.25 ε from a random start (fast adversarial training) and the "
                                "catastrophic-overfitting check; free (pgd-at): the fast schedule, each batch replayed "
                                "m = 4 times with the perturbation carried on (free adversarial training); cpu: the "
                                "schedule of the shipped project checkpoints; paper: the authors' (100+ epochs: capped "
                                "here)")
    preset = PRESETS[preset_name][dataset]
    full = full_data_source(dataset) is not None
    c1, c2, c3, c4 = st.columns(4)
    split = c1.radio("Training images", ["train", "demo_train"] if full else ["demo_train"], key="train_split",
                     format_func={"train": "training set", "demo_train": "demo sample (offline)"}.get,
                     help=None if full else "The full training set was not found; the demo sample is used.")
    demo = split == "demo_train"
    demo_images = len(get_dataset(dataset, "demo_train"))
    if demo:
        defaults = {"subset": demo_images, **DEMO_DEFAULTS}
    else:
        defaults = {"subset": min(preset.get("subset") or jobs.MAX_SUBSET, jobs.MAX_SUBSET),
                    "epochs": min(preset["epochs"], jobs.MAX_EPOCHS), "batch_size": preset["batch_size"]}
    scope = f"{preset_name}_{dataset}_{split}"
    subset = c2.number_input("Images", 10, demo_images if demo else jobs.MAX_SUBSET, defaults["subset"],
                             step=10 if demo else 500, key=f"train_subset_{scope}")
    epochs = c3.number_input("Epochs", 1, jobs.MAX_EPOCHS, defaults["epochs"], key=f"train_epochs_{scope}")
    batch = c4.number_input("Batch size", 1, int(subset), min(defaults["batch_size"], int(subset)),
                            key=f"train_batch_{scope}")
    c1, c2, c3, c4 = st.columns(4)
    eps = c1.number_input("Training ε", 0.0, 1.0, float(preset["eps"]), format="%.4f",
                          key=f"train_eps_{preset_name}_{dataset}",
                          help="ramped up from 0 during training (see below); ignored by 'normal'")
    steps = c2.number_input("Replays m" if preset.get("free") else "Inner attack steps", 1, 40, int(preset["steps"]),
                            key=f"train_steps_{preset_name}",
                            help="free: each batch is trained on m times in a row, every replay one optimizer step "
                                 "and one step of the perturbation" if preset.get("free") else None)
    gamma = c3.number_input("γ (regularizer weight)", 0.0, 10.0, float(DEFAULT_GAMMA[method]), format="%.4g",
                            key=f"train_gamma_{method}", help="TRADES β, IG λ, Int γ")
    evaluate_n = c4.number_input("Evaluation images", 10, jobs.EVALUATION_N,
                                 jobs.PRESET_EVALUATION_N.get(preset_name, jobs.EVALUATION_N), step=10,
                                 key=f"train_eval_n_{preset_name}",
                                 help="the first N of the paper's seed-99 test subset; 200 is the paper's size")

    starts = ["", *[m["name"] for m in model_table(dataset) if m["arch"] == arch]]
    init_from = st.selectbox("Start from", starts, format_func=lambda name: name or "fresh weights",
                             key=f"train_init_{dataset}_{arch}",
                             help="fine-tuning: start from a shipped or trained network of this architecture "
                                  "(e.g. a normal network, adversarially fine-tuned)")

    config = {"dataset": dataset, "arch": arch, "preset": preset_name, "epochs": int(epochs), "subset": int(subset),
              "batch_size": int(batch), "train_split": split, "eval_n": 0, "evaluate_n": int(evaluate_n)}
    if init_from:
        config["init_from"] = init_from
    if method in ADVERSARIAL:
        config |= {"eps": float(eps), "steps": int(steps)}
    if DEFAULT_GAMMA[method] > 0:
        config["gamma"] = float(gamma)
    try:
        planned = make_config(method, dataset, arch, preset_name,
                              **{k: v for k, v in config.items() if k not in ("dataset", "arch", "preset",
                                                                              "evaluate_n")})
    except ValueError as err:
        planned = None
        st.error(f"These settings cannot run: {err}")
    if planned is not None:
        total = planned.run_steps(int(subset))
        schedule = planned.resolve(max(total, 1))
        start, end = schedule.eps_ramp
        lr = ", ".join(f"{v:g} from step {at}" for at, v in schedule.lr_steps)
        replays = (f", each batch replayed {planned.replays} times: {int(epochs) / planned.replays:g} passes over the "
                   f"images" if planned.trains_free else "")
        ramp = (f"ε ramps from 0 at step {start} to {eps_label(planned.eps, dataset)} at step {end}. "
                if method in ADVERSARIAL else "")
        st.caption(f"This run: {total} steps ({int(epochs)} epochs of {int(subset) // int(batch)} batches of "
                   f"{int(batch)}{replays}). " + ramp
                   + f"Learning rate {planned.lr:g}" + (f", then {lr}." if lr else "."))
        if method in ADVERSARIAL and end > total:
            st.warning(f"This run ends at step {total}, before the {preset_name} schedule's ε ramp does (step {end}): "
                       f"it never trains at the full ε. Train longer, or use a preset whose ramp scales with the run.")
    if demo:
        st.caption(DEMO_NOTE)
    if preset_name == "classroom":
        st.caption(CLASSROOM_NOTE)
    if preset_name == "fast":
        st.caption(FAST_NOTE)
    if preset_name == "free":
        st.caption(FREE_NOTE)
    c1, c2, c3 = st.columns([1, 1, 2])
    started = c1.button("Start training", type="primary", key="train_start", disabled=planned is None)
    others = [m for m in TRAINING_METHODS if m != method]
    against = c3.selectbox("Compare against", others, index=others.index("normal" if method != "normal" else "int"),
                           key="train_compare_with", label_visibility="collapsed")
    compared = c2.button(f"Compare {against} vs {method}", key="train_compare", disabled=planned is None,
                         help="two runs with the settings above that differ only in the method, started together")

if started or compared:
    try:
        if started:
            ids = [jobs.start_job({**config, "method": method})]
        else:
            ids = jobs.start_compare(config, (against, method))
        st.session_state["train_view"] = ids[0]
    except ValueError as err:
        st.error(f"Not started: {err}")

all_jobs = jobs.list_jobs()
if not all_jobs:
    st.info("No training runs yet.")
    st.stop()
states = {j["id"]: j for j in all_jobs}
ids = list(states)
if st.session_state.get("train_view") not in states:
    st.session_state["train_view"] = next((j["id"] for j in all_jobs if j["state"] in jobs.ACTIVE), ids[0])


def run_label(job_id: str) -> str:
    job = states[job_id]
    compare = " · compare" if job["compare"] else ""
    return f"{job_id} · {job['state']} · {job['config']['method']} on {job['config']['dataset']}{compare}"


chosen = st.selectbox("Run", ids, format_func=run_label, key="train_view")
members = states[chosen]["compare"]["jobs"] if states[chosen]["compare"] else [chosen]
members = [m for m in members if m in states]
active = any(states[m]["state"] in jobs.ACTIVE for m in members)


def run_panel(status: dict) -> None:
    """State, progress and the actions of one run."""
    job_id = status["id"]
    st.markdown(f"**{STATE_ICONS[status['state']]} {status['config']['method']}: {status['state']}** — "
                f"{status['message']}")
    if status["state"] == "running" and status["total_steps"] and status["history"]:
        done = status["history"][-1]["step"]
        st.progress(min(done / status["total_steps"], 1.0), text=f"training: step {done} of {status['total_steps']}")
    if status["state"] == "evaluating":
        tick = status["eval_progress"] or {"stage": "loading", "done": 0, "total": 1}
        st.progress(min(tick["done"] / max(tick["total"], 1), 1.0),
                    text=f"evaluation: {tick['stage']}, {tick['done']} of {tick['total']}")
    if status["eval_message"]:
        st.warning(status["eval_message"])
    if status["state"] in jobs.ACTIVE and st.button("Stop", key=f"stop_{job_id}"):
        jobs.stop_job(job_id)
    if status["resumable"] and st.button("Resume", key=f"resume_{job_id}", help="continue from the last checkpoint"):
        try:
            jobs.resume_job(job_id)
            st.rerun()
        except ValueError as err:
            st.error(f"Not resumed: {err}")
    if status["eval_message"] and st.button("Evaluate again", key=f"evaluate_{job_id}"):
        try:
            jobs.evaluate_job(job_id)
            st.rerun()
        except ValueError as err:
            st.error(f"Not evaluated: {err}")


@st.fragment(run_every=2 if active else None)
def live_view(job_ids: list[str], was_active: bool) -> None:
    """State of the run(s), refreshed every 2 s while one is active, without rerunning the page."""
    statuses = [jobs.job_status(j) for j in job_ids]
    for column, status in zip(st.columns(len(statuses)), statuses):
        with column:
            run_panel(status)
    runs = {s["config"]["method"] if len(statuses) > 1 else "run": s["history"] for s in statuses if s["history"]}
    if runs:
        c1, c2, c3 = st.columns(3)
        key = "_".join(job_ids)
        c1.plotly_chart(figures.curves_figure({m: ([h["step"] for h in h_], [h["loss"] for h in h_])
                                               for m, h_ in runs.items()}, "step", "loss"), key=f"loss_{key}")
        c2.plotly_chart(figures.curves_figure({m: ([h["step"] for h in h_], [h["accuracy"] for h in h_])
                                               for m, h_ in runs.items()}, "step", "batch accuracy", (0, 1)),
                        key=f"acc_{key}")
        c3.plotly_chart(figures.curves_figure({m: ([h["step"] for h in h_], [h["eps"] for h in h_])
                                               for m, h_ in runs.items()}, "step", "training ε"), key=f"eps_{key}")
        st.caption(" · ".join(f"{m}: {h_[-1]['images_per_s']:.0f} images/s" for m, h_ in runs.items()))
    if was_active and not any(s["state"] in jobs.ACTIVE for s in statuses):
        st.rerun()  # a run just ended: show its evaluation, refresh the run list and the model pickers


def evaluation_view(statuses: list[dict]) -> None:
    """The evaluations of finished runs beside the paper networks: a table and two curves."""
    evaluations = {s["id"]: s["evaluation"] for s in statuses}
    first = next(iter(evaluations.values()))
    data, n = first["dataset"], first["n"]
    labels = {job_id: f"{states[job_id]['config']['method']} (your run)" for job_id in evaluations}
    shown = {labels[j]: ("your run", e) for j, e in evaluations.items()}
    references = jobs.reference_evaluations(data, n)
    shown |= {f"{e['method']} (paper network)": ("paper network", e) for e in references.values()}
    rows = []
    for label, (source, e) in shown.items():
        row = {"model": label, "source": source, "clean": e["clean_accuracy"]}
        for r in e["accuracy"][1:]:
            row |= {f"ε={eps_label(r['eps'], data)} reported": r["accuracy"],
                    f"ε={eps_label(r['eps'], data)} re-tested": r["retested"]}
        row |= {f"AAI τ ε={eps_label(r['eps'], data)}": r["kendall_tau"] for r in e["aai"]}
        rows.append(row)
    st.subheader("Evaluation")
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in rows[0] if c not in ("model", "source")})
    c1, c2 = st.columns(2)
    c1.plotly_chart(figures.curves_figure(
        {label: ([r["eps"] for r in e["accuracy"]], [r["retested"] for r in e["accuracy"]]) for label, (_, e) in shown.items()},
        "ε", "accuracy, re-tested", (0, 1),
        reported={label: ([r["eps"] for r in e["accuracy"]], [r["accuracy"] for r in e["accuracy"]])
                  for label, (_, e) in shown.items()}), key="eval_accuracy")
    c2.plotly_chart(figures.curves_figure({label: ([r["eps"] for r in e["aai"]], [r["kendall_tau"] for r in e["aai"]])
                                           for label, (_, e) in shown.items()}, "ε", "AAI Kendall τ"),
                    key="eval_tau")
    protocol = first["robust_protocol"]
    retest = protocol["retest"]
    st.caption(f"On {first['subset']} ({n} images). Reported accuracy (dashed): the authors' PGD ({protocol['steps']} "
               f"signed steps of {protocol['step_size']:g} from the image, no random start); re-tested (solid): what is "
               f"left after it and then {', '.join(retest['attacks'])} ({retest['steps']} steps each) on the images "
               "still standing. Clean errors count as failures; a gap between the two is a weak attack, not robustness. "
               f"AAI τ: Kendall rank correlation of the true class's CAM before and after a top-"
               f"{first['aai_protocol']['k']} attack of {first['aai_protocol']['steps']} steps, over images that "
               "kept their class; higher = a more stable interpretation. "
               + ("" if references else f"No paper-network references for {n} images yet "
                                        f"(`python tools/train_references.py --n {n}`)."))
    for label, (_, e) in shown.items():
        for eps in e["contradicted"]:
            row = next(r for r in e["accuracy"] if r["eps"] == eps)
            st.warning(f"{label}: at ε = {eps_label(eps, data)} the authors' PGD reports {row['accuracy']:.3f}, the "
                       f"re-test leaves {row['retested']:.3f}: the reported number overstates robustness.",
                       icon=":material/report:")
        for sign in e["masking_signs"]:
            st.info(f"{label}, `{sign}` in plain words: {SIGN_WORDS[sign]}.", icon=":material/school:")
    for warning in (w for e in evaluations.values() for w in e["warnings"]):
        st.warning(warning)
    for column, (job_id, e) in zip(st.columns(len(evaluations)), evaluations.items()):
        if column.button(f"Open {labels[job_id]} in Explore", icon=":material/biotech:", key=f"explore_{job_id}"):
            st.switch_page("pages/explore.py", query_params={"dataset": data, "models": e["model"], "run": "1"})


live_view(members, active)
statuses = [jobs.job_status(j) for j in members]
if not active and any(s["evaluation"] for s in statuses):
    if len(statuses) > 1 and not all(s["evaluation"] for s in statuses):
        st.info("One run of this compare has no evaluation yet: the table shows the other.")
    evaluation_view([s for s in statuses if s["evaluation"]])

for status in statuses:
    if status["state"] in jobs.ACTIVE:
        continue
    with st.expander(f"Files and settings of {status['id']}"):
        if status["checkpoint"]:
            listed = "listed in every model picker" if status["state"] == "finished" else \
                "not a model (the run did not finish): resume it, or load the file by path"
            st.markdown(f"Checkpoint `{status['checkpoint']}` ({listed}).")
        if status["metrics"]:
            st.json(status["metrics"], expanded=False)
        st.json(status["config"], expanded=False)
        export_buttons(f"train_{status['id']}",
                       csv=rows_to_csv([{k: h[k] for k in HISTORY_FIELDS} for h in status["history"]]),
                       json=json.dumps(status, indent=1), stem=status["id"])
