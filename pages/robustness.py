"""Robustness: accuracy vs eps and AAI Kendall tau vs eps for chosen models (interp_core.evaluate).

Before a run the page estimates its time from a measured per-step cost (interp_core.services.estimate);
during it, a progress bar with the time left and a Cancel button (a click stops the run at its next
progress step: Streamlit interrupts a script when a new run is asked for). Each model's evaluation
comes from the server's store (app_support/shared_compute.py): computed once for every session,
in the server's queue."""

import json
from functools import partial
from pathlib import Path

import streamlit as st

from interp_core import paths
from interp_core.services import figures
from interp_core.datasets import DATASETS, eps_text
from interp_core.evaluate import PROTOCOLS, RETESTS, SIGN_WORDS, aai_evaluation, evaluation_set, robust_accuracy
from interp_core.evaluate.reproduce import TABLE_FILES, load_reproduce_tables, reproduce_command
from interp_core.io import rows_to_csv
from interp_core.services.estimate import measure_costs, robustness_seconds
from app_support.common import dataset_picker, export_buttons, get_model, model_label, model_picker, progress_bar
from app_support.layout import setup_page
from app_support.shared_compute import shared_result

setup_page("Robustness")

DEFAULT_REPRODUCE = "results/reproduce-quick"  # the committed quick run
DEFAULT_FULL = "results/reproduce"

st.title("Robustness against ε")


def evaluate(spec: str, dataset: str, split: str, n: int, protocol: str, retest: str | None, eps: tuple, steps: int,
             restarts: int, autoattack: bool, aai: bool, aai_steps: int) -> dict:
    """Robust accuracy (beside its re-test under the paper protocol; and AAI tau) of one model."""
    data, subset = evaluation_set(dataset, split, n, "paper")
    model = get_model(spec)
    with progress_bar(f"{spec}: robust accuracy" + (" and its re-test" if retest else "") + ", batch") as tick:
        result = robust_accuracy(model, data.images, data.labels, list(eps), protocol, steps=steps,
                                 restarts=restarts, autoattack=autoattack, retest=retest, subset=subset,
                                 progress=tick)
    robust = {**result.to_dict(), "contradicted": result.contradictions()}
    tau = None
    if aai:
        with progress_bar(f"{spec}: AAI, batch") as tick:
            tau = aai_evaluation(model, data.images, data.labels, [e for e in eps if e > 0], steps=aai_steps,
                                 subset=subset, progress=tick).to_dict()
    return {"model": model_label(spec), "robust": robust, "aai": tau}


dataset, split = dataset_picker("rob")
specs = model_picker(dataset, "rob", prefer=("normal", "int"))
with st.sidebar.expander("Evaluation", expanded=True):
    n = st.slider("Images (the paper's seed-99 subset)", 5, 200, 20, step=5, key="rob_n")
    protocol = st.radio("Protocol", PROTOCOLS, key="rob_protocol", horizontal=True,
                        help="paper: the authors' PGD (0.01 sign steps from x, one restart), shown beside its "
                             "re-test. strong: the per-image worst case of that, PGD-CE and PGD-margin with random "
                             "restarts (and AutoAttack).")
    retest = st.radio("Re-test (paper)", list(RETESTS), key="rob_retest", horizontal=True,
                      disabled=protocol != "paper",
                      help="What the authors' PGD leaves, attacked again by PGD with a random start (cross-entropy "
                           "and margin) and by Square, which uses no gradient: "
                           + "; ".join(f"{k}: {v['steps']} steps, {v['queries']} queries" for k, v in RETESTS.items())
                           + ". A number the re-test lowers was never robustness.")
    grid = DATASETS[dataset].paper_eps
    eps = st.multiselect("ε grid", grid, default=list(grid), key=f"rob_eps_{dataset}",
                         format_func=partial(eps_text, dataset))
    steps = st.number_input("PGD steps", 1, 200, 200 if protocol == "paper" else 40, key=f"rob_steps_{protocol}")
    restarts = st.number_input("restarts (strong)", 1, 10, 2, key="rob_restarts", disabled=protocol == "paper")
    autoattack = st.checkbox("AutoAttack (strong; slow)", False, key="rob_aa", disabled=protocol == "paper")
    aai = st.checkbox("AAI Kendall τ curve", True, key="rob_aai")
    aai_steps = st.number_input("AAI steps", 1, 200, 200, key="rob_aai_steps", disabled=not aai)

@st.cache_data(show_spinner="Measuring the cost of an attack step…", max_entries=32)
def step_costs(spec: str, dataset: str, split: str, n: int, eps: float) -> dict:
    """Seconds per step of the authors' PGD and of AAI for one model on the evaluation images."""
    data, _ = evaluation_set(dataset, split, n, "paper")
    return measure_costs(get_model(spec), data.images, data.labels, eps)


def estimate(specs: list[str], dataset: str, split: str, n: int, protocol: str, retest: str | None, eps: list[float],
             steps: int, restarts: int, autoattack: bool, aai: bool, aai_steps: int) -> None:
    """The time the chosen settings will take, from each model's measured per-step cost."""
    costs = {s: step_costs(s, dataset, split, n, max(eps)) for s in specs}
    seconds = sum(robustness_seconds(c, eps, protocol, steps, restarts, aai, aai_steps, retest)
                  for c in costs.values())
    per_step = ", ".join(f"{model_label(s)} {c['pgd'] * 1000:.0f} ms (PGD) / {c['aai'] * 1000:.0f} ms (AAI)"
                         for s, c in costs.items())
    st.caption(f"Estimated time: at most about {seconds:.0f} s" + (" plus AutoAttack" if autoattack else "")
               + (f" plus Square ({RETESTS[retest]['queries']} queries on the images still standing)"
                  if retest else "")
               + f" (measured per attack step on these {n} images: {per_step}). Settings already evaluated come "
                 "back at once.")


if st.session_state.get("rob_cancel"):
    st.session_state.pop("rob_request", None)
    st.info("Evaluation cancelled: nothing was kept. Press Evaluate to start again.")
if specs and eps:
    estimate(specs, dataset, split, int(n), protocol, retest if protocol == "paper" else None, sorted(eps),
             int(steps), int(restarts), bool(autoattack and protocol == "strong"), aai, int(aai_steps))
if st.button("Evaluate", type="primary", disabled=not (specs and eps), key="rob_run"):
    st.session_state["rob_request"] = [dict(spec=s, dataset=dataset, split=split, n=int(n), protocol=protocol,
                                            retest=retest if protocol == "paper" else None,
                                            eps=tuple(sorted(eps)), steps=int(steps), restarts=int(restarts),
                                            autoattack=bool(autoattack and protocol == "strong"), aai=aai,
                                            aai_steps=int(aai_steps)) for s in specs]

def show_results(requests: list[dict]) -> None:
    """Curves, table and exports of the evaluated models; a Cancel button while they compute."""
    cancel = st.empty()
    cancel.button("Cancel", icon=":material/stop_circle:", key="rob_cancel",
                  help="Stops the evaluation at its next progress step")
    try:
        results = [shared_result(("robustness", *sorted(request.items())), lambda r=request: evaluate(**r))
                   for request in requests]
    except ValueError as err:  # a setting the library refuses: its message, not a traceback
        st.error(f"The evaluation could not run: {err}")
        return
    finally:
        cancel.empty()
    if None in results:  # the server is busy: its notice is shown
        return

    scale = DATASETS[requests[0]["dataset"]].eps_scale
    unit = "ε (×1/255)" if scale == 255 else "ε"
    retested = all("retested" in row for r in results for row in r["robust"]["results"])
    st.subheader("Robust accuracy" + (", re-tested" if retested else " (strong protocol)"))
    curve = "retested" if retested else "accuracy"
    st.plotly_chart(figures.curves_figure(
        {r["model"]: ([row["eps"] * scale for row in r["robust"]["results"]],
                      [row[curve] for row in r["robust"]["results"]]) for r in results},
        unit, "robust accuracy (re-tested)" if retested else "robust accuracy (strong)", (0, 1),
        reported={r["model"]: ([row["eps"] * scale for row in r["robust"]["results"]],
                               [row["accuracy"] for row in r["robust"]["results"]]) for r in results}
        if retested else None), key="rob_acc")
    if retested:
        st.caption("Solid: the re-tested accuracy (what is left after the authors' PGD and then a random start and "
                   "Square). Dashed: the reported accuracy under the authors' PGD alone. Where the two part, the "
                   "authors' attack was too weak there: the gap is not robustness.")
    for r in results:
        for row in r["robust"]["contradicted"]:
            st.warning(f"{r['model']}: at ε = {row['eps'] * scale:.4g} the authors' PGD reports {row['accuracy']:.3f}, "
                       f"the re-test leaves {row['retested']:.3f}: the reported number overstates robustness.",
                       icon=":material/report:")
        for warning in r["robust"]["warnings"]:
            st.warning(f"{r['model']}: {warning}")
        for sign in r["robust"]["masking_signs"]:
            st.info(f"{r['model']}, `{sign}` in plain words: {SIGN_WORDS[sign]}.", icon=":material/school:")
    if any(r["aai"] for r in results):
        st.subheader("Interpretation robustness (AAI)")
        st.plotly_chart(figures.curves_figure({r["model"]: ([row["eps"] * scale for row in r["aai"]["results"]],
                                                             [row["kendall_tau"] for row in r["aai"]["results"]])
                                                for r in results if r["aai"]}, unit, "mean Kendall τ (kept predictions)",
                                               (-0.2, 1)), key="rob_tau")
        st.caption("Kendall's τ-b between clean and attacked true-class CAM, over images whose prediction AAI did not "
                   "change; higher = more robust interpretation (docs/method.md#aai).")

    rows = []
    for r in results:
        taus = {row["eps"]: row for row in (r["aai"] or {"results": []})["results"]}
        for row in r["robust"]["results"]:
            aai_row = taus.get(row["eps"], {})
            accuracy = ({"reported (authors' PGD)": f"{row['accuracy']:.3g}", "re-tested": f"{row['retested']:.3g}"}
                        if retested else {"robust accuracy (strong)": f"{row['accuracy']:.3g}"})
            rows.append({"model": r["model"], unit: f"{row['eps'] * scale:.4g}", **accuracy,
                         "AAI Kendall τ": f"{aai_row['kendall_tau']:.3g}" if aai_row.get("kept") else "—",
                         "AAI top-8 ∩": f"{aai_row['topk_intersection']:.3g}" if aai_row.get("kept") else "—",
                         "AAI kept": str(aai_row["kept"]) if "kept" in aai_row else "—"})  # one type: text
    st.table(rows)
    first = results[0]["robust"]
    st.caption(f"{first['subset']} · protocol: " + ", ".join(f"{k}={v}" for k, v in first["protocol"].items())
               + f" · {sum(r['robust']['seconds'] + (r['aai'] or {}).get('seconds', 0) for r in results):.1f} s"
               " of compute")

    export_buttons("rob", csv=rows_to_csv(rows), json=json.dumps(results, indent=1, default=str), stem="robustness")


def paper_tables() -> None:
    """The tables of ``python -m interp_core reproduce`` (committed quick run by default), read by
    interp_core.evaluate.reproduce.load_reproduce_tables."""
    st.header("The paper networks' tables")
    st.markdown("PGD robust accuracy and AAI Kendall τ of the authors' networks (docs/method.md#evaluation), as written by "
                "`python -m interp_core reproduce`. Nothing is computed here: the page reads that run's CSV files.")
    folder = st.text_input("Output directory of a reproduce run", DEFAULT_REPRODUCE, key="rob_paper_dir",
                           help="Relative paths are taken from the project folder.")
    path = Path(folder).expanduser()
    path = path if path.is_absolute() else paths.PROJECT_ROOT / path
    try:
        run = reproduce_tables(str(path), _fingerprint(path))
    except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError) as err:
        st.error(f"No tables read from {folder}: {err}")
        return
    st.markdown(f"From `{run['out']}` · mode: **{run['mode']}**")
    st.markdown("Regenerate these tables:")
    st.code(run["command"], language="bash")
    if run["quick"] is not False:
        st.caption("The authors' full protocol (200 images, 200 steps, every network; hours on a CPU): "
                   f"`{reproduce_command(paths.PROJECT_ROOT / DEFAULT_FULL, False)}`")
    titles = {"pgd": "PGD robust accuracy", "aai": "AAI mean Kendall τ (true-class CAM, kept predictions)"}
    for part, table in run["tables"].items():
        first = table["rows"][0]
        st.subheader(titles[part])
        st.caption(f"Protocol: {first.get('attack')}, {first.get('steps')} steps, step {first.get('step_size')}, "
                   f"random start {first.get('random_start')}, {first.get('restarts')} restart(s); one column per ε"
                   + (f"; each cell: reported / re-tested ({first['retest']} re-test: random-start PGD and Square on "
                      "what the authors' PGD left standing)" if "retested" in first else "")
                   + ("; — = AAI kept no prediction" if part == "aai" else "") + ".")
        subsets = {f"{r['dataset']} {r['arch']}": r.get("subset", "") for r in table["rows"]}
        for group, rows in table["wide"].items():
            st.markdown(f"**{group}** · images: {subsets[group]}")
            st.dataframe(rows, hide_index=True, key=f"rob_paper_{part}_{group}")
        st.download_button(f"{table['file']}", (path / table["file"]).read_bytes(), file_name=table["file"],
                           mime="text/csv", icon=":material/download:", key=f"rob_paper_{part}_csv",
                           on_click="ignore")


def _fingerprint(path: Path) -> tuple:
    """Modification times of a run's files, so a rewritten run is read again."""
    return tuple((name, (path / name).stat().st_mtime_ns) for name in
                 ("summary.json", *(f for f, _ in TABLE_FILES.values())) if (path / name).is_file())


@st.cache_data(show_spinner=False, max_entries=8)
def reproduce_tables(path: str, fingerprint: tuple) -> dict:
    return load_reproduce_tables(path)


requests = st.session_state.get("rob_request")
if requests:
    show_results(requests)
else:
    st.info("Choose models and settings in the sidebar, then press Evaluate. Results are cached: the same "
            "settings come back at once.")
paper_tables()
