"""Explore: attack one image on one or more models and compare interpretation maps and discrepancies.

Widgets -> ``model_job`` (app_support/explore_runs.py: one call into interp_core.services.explore
per model, its result shared by every session through the server's store: identical requests
computed once, distinct ones in a bounded queue whose position is shown; per-model progress; each
model's panel is drawn as soon as its result is there) -> render. The clean images' maps are kept
across attacks (``clean_map_cache``). The view (dataset, image, models, attack and its settings,
explainers, view options) lives in the URL, so a link reproduces it (app_support/url_state.py);
the guided demos on the home page are such links.
"""

import dataclasses
import math
import random
import time
from urllib.parse import urlencode

import numpy as np
import streamlit as st

from app_support.attack_controls import DEFAULT_ATTACK, attack_controls, param_fields
from app_support.common import (DATASET_LABELS, IMAGE_SHAPES, dataset_picker, export_buttons, folder_fingerprint,
                                get_dataset, get_image_folder, model_label, model_picker,
                                model_table, uploaded_image)
from app_support.drawing import drawn_digit
from app_support.explore_runs import (DEFAULT_EXPLAINERS, GALLERY_LIMIT, SOURCES, VIEW_FIELDS, explore_request,
                                     gallery_predictions, model_job, read_link, source_data, view_key)
from app_support.layout import setup_page
from app_support.shared_compute import shared_figure, shared_result, show_shared_image
from app_support.url_state import Link, query
from interp_core import paths
from interp_core.attacks import ATTACKS
from interp_core.datasets import DATASETS
from interp_core.interpret import EXPLAINERS, LABELS
from interp_core.services import figures, slides
from interp_core.services.explore import (BOUND_DEFINITION, EPS_FOUND_LABEL, METRIC_DEFINITIONS, ExploreResult,
                                          MisclassifiedImage, bound_readout, eps_found_readout, goal_readout, to_csv,
                                          to_json, to_npz)

setup_page("Explore")

#: Thumbnails per gallery row: normal and presentation mode (larger type needs wider buttons).
THUMBS = {False: 12, True: 6}
TOPK = 5
#: Figure cell and type sizes (pixels): normal and presentation mode.
SIZES = {False: (120, figures.FONT_PX), True: (180, 28)}
#: Significant figures of the discrepancy table: normal and presentation mode.
TABLE_DIGITS = {False: 6, True: 3}
#: Presentation mode: larger type everywhere (Streamlit sizes its text in rem; paragraphs at 1rem, 20 px).
PRESENTATION_CSS = ("<style>html { font-size: 20px; } "
                    "[data-testid='stMarkdownContainer'] p, [data-testid='stMarkdownContainer'] li "
                    "{ font-size: 1rem; }</style>")
#: The 2-class bound and the measures it compares, for st.latex.
FORMULAS = (
    r"D_1 = \lVert I_y(x') - I_y(x) \rVert_1 \qquad "
    r"D_2 = \tfrac{1}{2}\left(\lVert I_y(x') - I_y(x) \rVert_1 + \lVert I_t(x') - I_t(x) \rVert_1\right)",
    r"Z_t(x') > Z_y(x') \;\Rightarrow\; D_2\!\left(\tfrac{\mathrm{CAM}}{h\,w}\right) \;\ge\; "
    r"\tfrac{1}{2}\left(Z_y(x) - Z_t(x)\right)",
)


def class_map(classes: list[str], model_classes: list[str]) -> np.ndarray | None:
    """The model class index of each of ``classes`` when every one is a model class name (case
    ignored), else None."""
    lower = [c.lower() for c in model_classes]
    return np.array([lower.index(c.lower()) for c in classes]) if all(c.lower() in lower for c in classes) else None


def pick_gallery_image(source: tuple, spec: str | None, model_classes: list[str], key: str = "explore",
                       default: int = 0, per_row: int = THUMBS[False]
                       ) -> tuple[np.ndarray, int | None, str, int] | None:
    """Gallery with true and predicted labels, filters, a random pick and clickable thumbnails (the
    chosen one framed); returns (x, y, caption, gallery index) where y is the true class as a
    model class index, or None when the gallery's classes are not the model's (then the attack
    uses the clean prediction). A gallery opens at image ``default`` (the first image the filters
    keep when they hide it); another gallery (dataset, split or folder) opens at its own default."""
    data = source_data(source)
    n = min(len(data), GALLERY_LIMIT)
    labels = data.labels[:n].numpy()
    to_model = class_map(data.class_names, model_classes)
    preds = gallery_predictions(spec, source) if spec else None
    c1, c2, c3 = st.columns([2, 2, 1])
    cls = c1.selectbox("Filter by true class", ["all"] + data.class_names, key=f"{key}_filter_class")
    wrong = c2.checkbox("misclassified only", key=f"{key}_filter_wrong", disabled=preds is None or to_model is None,
                        help="by the first selected model" if to_model is not None else
                        "the true classes are not the model's classes")
    keep = np.arange(n)
    if cls != "all":
        keep = keep[labels[keep] == data.class_names.index(cls)]
    if wrong and preds is not None and to_model is not None:
        keep = keep[preds[keep] != to_model[labels[keep]]]
    if len(keep) == 0:
        st.info("No image matches these filters.")
        return None
    options = [int(i) for i in keep]
    if (st.session_state.get(f"{key}_gallery", source) != source
            or st.session_state.get(f"{key}_index") not in options):
        st.session_state[f"{key}_index"] = default if default in options else options[0]
    st.session_state[f"{key}_gallery"] = source

    def choose(i: int) -> None:
        st.session_state[f"{key}_index"] = i

    c3.button("Random image", icon=":material/casino:", on_click=lambda: choose(random.choice(options)),
              key=f"{key}_random")

    def describe(i: int) -> str:
        pred = f" · pred {model_classes[preds[i]]}" if preds is not None else ""
        return f"#{i} · true {data.class_names[labels[i]]}{pred}"

    index = st.selectbox("Image", options, format_func=describe, key=f"{key}_index")
    start = options.index(index) - options.index(index) % per_row
    shown = options[start:start + per_row]
    row = shown + [None] * (per_row - len(shown))
    # one strip image over one row of equal buttons (not a column per thumbnail): a class of thirty
    # opening a view costs the server per element and per image sent
    show_shared_image(("thumbnails", source, tuple(row), index), lambda: figures.thumbnail_strip(
        [data.images[i].numpy() if i is not None else np.ones_like(data.images[0].numpy()) for i in row],
        row.index(index)), width="stretch")
    with st.container(horizontal=True, gap="xxsmall"):
        for place, i in enumerate(row):
            if i is None:  # a short last row keeps the strip's cells
                st.button(" ", key=f"{key}_thumb_blank_{place}", disabled=True, width="stretch")
                continue
            pred = f"/{model_classes[preds[i]][:4]}" if preds is not None else ""
            st.button(f"#{i}", key=f"{key}_thumb_{i}", on_click=choose, args=(i,), width="stretch",
                      type="primary" if i == index else "secondary",
                      help=f"true {data.class_names[labels[i]]}{pred and ', predicted ' + model_classes[preds[i]]}")
    y = None if to_model is None else int(to_model[labels[index]])
    return data.images[index:index + 1].numpy(), y, describe(index), index


def pick_folder_image(dataset: str, spec: str | None) -> tuple[np.ndarray, int | None, str, int] | None:
    """The gallery of the configured image folder (INTERP_CORE_IMAGE_FOLDER) at the input of
    ``dataset``'s models; a folder that cannot be read is an st.error and None."""
    root = str(paths.image_folder())
    channels, size = IMAGE_SHAPES[dataset]
    try:
        fingerprint = folder_fingerprint(root)
        data = get_image_folder(root, dataset, fingerprint)
    except OSError as err:  # DatasetNotFound is a FileNotFoundError
        st.error(f"Image folder not used: {err}")
        return None
    model_classes = get_dataset(dataset, "demo").class_names
    if data.notes:
        with st.expander(f"Intake notes: {len(data.notes)} files skipped or converted"):
            st.markdown("\n".join(f"- {note}" for note in data.notes))
    st.info(f"{len(data)} images in {len(data.class_names)} classes from `{root}` (INTERP_CORE_IMAGE_FOLDER), "
            f"converted to {'grayscale' if channels == 1 else 'RGB'} and resized to {size}×{size}: the input of "
            f"the {DATASET_LABELS[dataset]} models. For models of another input size or channels, choose their "
            "dataset in the sidebar.")
    mapped = class_map(data.class_names, model_classes) is not None
    if mapped:
        st.caption(f"The folder's classes are {DATASET_LABELS[dataset]} classes: y (the attack's true class, used "
                   "by the 2-class measure and the bound) is the image's folder class.")
    else:
        st.info(f"The folder's classes ({', '.join(data.class_names)}) are not {DATASET_LABELS[dataset]} classes: "
                "“true” is the folder class, “pred” the model's class, and y (the attack's true class, used by "
                "the 2-class measure and the bound) is the model's clean prediction.")
    picked = pick_gallery_image(("folder", root, dataset, fingerprint), spec, model_classes, key="explore_folder")
    if picked is None:
        return None
    x, y, caption, index = picked
    return x, y, f"folder image {caption}" + ("" if mapped else " (y = clean prediction)"), index


def apply_link(link: Link, params: dict[str, str]) -> bool:
    """Put a link's settings (``read_link``) into the widgets' session state (before they are
    drawn); returns whether the link asks for the results (run=1)."""
    ss = st.session_state
    shown = {"dataset": ss.get("explore_dataset", "mnist"), "source": ss.get("explore_source", "gallery"),
             "attack": ss.get("explore_attack", DEFAULT_ATTACK)}
    found = read_link(link, params, shown)
    dataset, source, attack = (found.get(name, shown[name]) for name in ("dataset", "source", "attack"))
    gallery = "explore_folder" if source == "folder" else "explore"
    if "image" in params:
        ss[f"{gallery}_filter_class"], ss[f"{gallery}_filter_wrong"] = "all", False
        ss.pop(f"{gallery}_gallery", None)  # the link's image, not the gallery's default
    keys = {"dataset": "explore_dataset", "split": "explore_split", "source": "explore_source",
            "image": f"{gallery}_index", "models": f"explore_models_{dataset}", "attack": "explore_attack",
            **{param: key for param, (key, _, _) in param_fields(attack, dataset, "explore").items()},
            "target": "explore_target", "explainers": "explore_explainers", "trajectory": "explore_trajectory",
            **{name: f"explore_{name}" for name, _, _ in VIEW_FIELDS}}
    for name, value in found.items():
        if name in keys:
            ss[keys[name]] = value
    return found.get("run", False)


def link_values(dataset: str, split: str, source: str, specs: list[str], attack: str, explainers: list[str],
                trajectory: str, showing: bool) -> dict:
    """The view as URL parameters (uploads cannot travel in a link: an uploaded model or image is left out)."""
    ss = st.session_state
    index = {"gallery": "explore_index", "folder": "explore_folder_index"}.get(source)
    registered = {m["name"] for m in model_table(dataset)}
    return {"dataset": dataset, "split": split, "source": source, "image": ss.get(index) if index else None,
            "models": [s for s in specs if s in registered], "attack": attack,
            **{param: ss.get(key) for param, (key, _, _) in param_fields(attack, dataset, "explore").items()},
            "target": ss.get("explore_target") if ATTACKS[attack].targeted else None,
            "explainers": explainers, "trajectory": trajectory,
            **{name: ss.get(f"explore_{name}") for name in ("maps", "grid", "overlay", "shared", "present")},
            "run": 1 if showing else None}


def view_controls(present: bool) -> dict:
    """How results are drawn (no recomputation): maps of y or t, grid, overlays, shared scale."""
    with st.sidebar.expander("View", expanded=not present):
        cls = st.segmented_control("Maps of", ["y", "t"], default="y", required=True, key="explore_maps",
                                   format_func={"y": "true class y", "t": "attack class t"}.get)
        grid = st.segmented_control("Grid", ["native", "input"], default="native", required=True,
                                    key="explore_grid", help="CAM-family maps live on the feature grid; "
                                                             "\"input\" upsamples them bilinearly for display only")
        overlay = st.toggle("Maps over the image", key="explore_overlay",
                            help="Beside the raw grids: the clean and adversarial maps laid over their images")
        shared = st.toggle("Shared colour scale across models", key="explore_shared",
                           help="One colour scale for every model's maps, so a weak map looks weak beside a "
                                "strong one; off: each model's row has its own scale")
    cell, font = SIZES[present]
    return dict(cls=0 if cls == "y" else 1, upsampled=grid == "input", overlay=overlay, shared=shared, cell=cell,
                font_px=font)


def readouts(res: ExploreResult, i: int) -> None:
    """One model's numbers beside its images: the found eps (minimum-eps) or γ (ISA's search),
    predictions, y and t with the bound line, and D1 on the same scale."""
    m, names = res.models[i], res.class_names
    if res.attack.get("name") == "min-eps":
        st.metric(EPS_FOUND_LABEL, eps_found_readout(res, i),
                  help=f"the smallest ε of the bisection (upper limit {res.attack['eps']:g}) at which its targeted "
                       "attack (random starts, the best restart kept) reached t: a stronger attack may need less, "
                       "and may succeed where the search found none")
    if m.found_gamma is not None:
        gamma = float(m.found_gamma[0])
        st.metric("γ found", "none" if math.isnan(gamma) else f"{gamma:.3g}",
                  help="no γ of the search reached t at this ε: the image is returned unchanged" if math.isnan(gamma)
                  else "the largest γ of the search (doubling and bisection) at which ISA still reached t")
    for label, prob in (("clean", m.clean_prob[0]), ("adversarial", m.adv_prob[0])):
        top = prob.argsort()[::-1][:TOPK]
        st.markdown(f"top-{TOPK} {label}: " + " · ".join(f"**{names[c]}** {prob[c]:.1%}" for c in top))
    y, t = int(m.y[0]), int(m.target[0])
    st.markdown(f"y = **{names[y]}**, t = **{names[t]}** · {bound_readout(m)}")
    st.markdown(f"D1 of CAM/(h·w) = {m.d1_cam_hw[0]:.4f}: the 1-class measure has no such floor")


def model_panel(res: ExploreResult, key: tuple, view: dict, wide: bool) -> None:
    """One model's panel (``res`` holds that model alone, stored under ``key``): its name, whether
    the attack reached its goal, the images and perturbation, and its readouts (beside the images
    when ``wide``, a row of its own; below them in a column)."""
    m = res.models[0]
    st.markdown(f"#### {m.model}")
    # a missed goal is a result, flagged (warning), not an error of the app
    (st.success if m.goal_reached[0] else st.warning)(goal_readout(res, 0), icon=":material/check_circle:"
                                                      if m.goal_reached[0] else ":material/warning:")
    left, right = st.columns([3, 2]) if wide else (st.container(), st.container())
    title, captions = figures.summary_text(res, 0, with_model=False)
    show_shared_image((key, "summary", view["cell"], view["font_px"]), lambda: figures.model_summary_image(
        res, 0, cell=view["cell"], font_px=view["font_px"], with_model=False), left,
        alt=f"{title}: " + "; ".join(captions))
    with right:
        readouts(res, 0)


def render(res: ExploreResult, key: tuple, view: dict, digits: int = TABLE_DIGITS[False], share: str = "") -> None:
    """Everything below the models' panels of ``res`` (every model's result, ``view_key``
    ``key``): maps, numbers (to ``digits`` significant figures), the attack step by step, exports
    (the slides name ``share``, the view's link). Figures are drawn once per server
    (``show_shared_image``, ``shared_figure``)."""
    st.subheader("Interpretation maps")
    st.caption("Clean, adversarial and difference maps share ONE symmetric colour scale per row, "
               + ("the same for every model" if view["shared"] else "each model its own")
               + " (RdBu: red negative, blue positive; the bar gives the range, rounded up to a round number).")
    for name in res.models[0].maps:
        show_shared_image((key, "maps", name, *sorted(view.items())),
                          lambda name=name: figures.maps_figure(res, name, **view))

    st.subheader("Discrepancy numbers")
    st.table([{"model": m.model, "explainer": LABELS.get(e, e),
               **{k: f"{float(v[0]):.{digits}g}" for k, v in ms.metrics.items()}}
              for m in res.models for e, ms in m.maps.items()])
    for formula in FORMULAS:
        st.latex(formula)
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in METRIC_DEFINITIONS.items())
                + f"\n- **bound**: {BOUND_DEFINITION}")

    if res.models[0].trajectory is not None:
        trajectory_view(res, key, view)

    st.subheader("Export")
    # built when clicked (deferred), so showing the results does not pay for every export
    export_buttons("explore", csv=lambda: to_csv(res), json=lambda: to_json(res), npz=lambda: to_npz(res),
                   png=lambda: figures.to_png(res), html=lambda: slides.view_slides(res, share), stem="explore")


@st.fragment
def trajectory_view(res: ExploreResult, key: tuple, view: dict) -> None:
    """Slider over attack steps: image, prediction and maps at each step (reruns only this part)."""
    traj0 = res.models[0].trajectory
    last = traj0.x.shape[0] - 1
    st.subheader(f"Attack step by step ({LABELS.get(traj0.explainer, traj0.explainer)} maps)")
    step = st.slider("Attack step", 0, last, last, key="explore_step")
    for m in res.models:
        traj = m.trajectory
        y, t = int(m.y[0]), int(m.target[0])
        st.markdown(f"**{m.model}**")
        show_shared_image((key, "step", m.model, step, view["font_px"]), lambda: figures.step_image(
            traj, res.class_names, y, t, step, font_px=view["font_px"]))
        st.plotly_chart(shared_figure((key, "trajectory", m.model, step), lambda: figures.trajectory_figure(
            traj, res.class_names, y, t, step=step)), key=f"traj_{m.model}")


def compute(request: dict, x: np.ndarray, view: dict,
            one_per_row: bool = False) -> tuple[ExploreResult | None, float]:
    """Every model's result (cached per model), with a progress bar naming the model at work. Each
    model's panel is drawn as soon as its result is there (one column per model; one row each
    from three models on, or with ``one_per_row``, so that type stays legible); a model that refuses the image shows why
    in its place. Returns the models' results together (None when every model refused) and the
    seconds spent getting them (far below their compute time when they came from the cache)."""
    specs = request["specs"]
    wide = len(specs) >= 3 or one_per_row
    bar = st.progress(0.0)
    boxes = [st.container() for _ in specs] if wide else st.columns(len(specs))
    results, fetching = [], 0.0
    for i, (spec, box) in enumerate(zip(specs, boxes)):
        bar.progress(i / len(specs), text=f"Attacking and explaining: model {i + 1} of {len(specs)} "
                                          f"({model_label(spec)})…")
        started = time.perf_counter()
        key, job = model_job(request, x, spec)
        try:
            res = shared_result(key, job, box)
        except MisclassifiedImage as err:
            box.warning(f"Refused: {err}", icon=":material/block:")
            continue
        finally:
            fetching += time.perf_counter() - started
        if res is None:  # the server is busy: its notice is shown in the box
            continue
        with box:
            model_panel(res, key, view, wide)
        results.append(res)
    bar.empty()
    return (dataclasses.replace(results[0], models=[r.models[0] for r in results]) if results else None), fetching


st.title("Explore an attack")
link = Link("explore")
incoming = link.incoming()
auto_run = apply_link(link, incoming) if incoming else False
if link.ignored:
    st.warning("Some settings of the link were not used: " + "; ".join(link.ignored))

present = st.sidebar.toggle("Presentation mode", key="explore_present",
                            help="Larger type and figures; advanced settings folded")
if present:
    st.html(PRESENTATION_CSS)
dataset, split = dataset_picker("explore")
specs = model_picker(dataset, "explore")
class_names = get_dataset(dataset, "demo").class_names
attack, params, target = attack_controls(dataset, class_names, key="explore", expanded=not present)
explainers = st.sidebar.multiselect("Explainers", list(EXPLAINERS), default=DEFAULT_EXPLAINERS,
                                    format_func=LABELS.get, key="explore_explainers")
trajectory = st.sidebar.selectbox("Maps along the attack steps", explainers or ["cam"], format_func=LABELS.get,
                                  key="explore_trajectory",
                                  help="The explainer recorded at every attack step (CAM is the cheapest).")
view = view_controls(present)

folder = paths.image_folder()
source = st.radio("Image source", ["gallery"] + (["folder"] if folder else []) + ["upload"]
                  + (["draw"] if dataset == "mnist" else []), horizontal=True,
                  key="explore_source", format_func=lambda s: SOURCES[s] + (f" ({folder.name})" if s == "folder"
                                                                            else ""))
if source == "gallery":
    picked = pick_gallery_image(("dataset", dataset, split), specs[0] if specs else None, class_names,
                                default=DATASETS[dataset].default_image if split == "demo" else 0, per_row=THUMBS[present])
elif source == "folder":
    picked = pick_folder_image(dataset, specs[0] if specs else None)
else:  # an upload, or a digit drawn on the canvas
    x_up = uploaded_image(dataset, "explore") if source == "upload" else drawn_digit("explore")
    what, image_id = {"upload": ("uploaded image", "upload"), "draw": ("drawn digit", "drawing")}[source]
    label = st.selectbox(f"True class of the {what}", ["use the clean prediction"] + class_names,
                         key="explore_upload_label")
    picked = None if x_up is None else (x_up, None if label not in class_names else class_names.index(label),
                                        what, image_id)

inputs = None
if picked is not None and specs and explainers:
    x, y, caption, image_id = picked
    inputs = explore_request(x, caption, y, class_names, specs, attack, params, target, explainers, trajectory,
                             dataset, image_id)
if st.button("Run attack", type="primary", disabled=inputs is None, key="explore_run") or (auto_run and inputs):
    st.session_state["explore_request"] = inputs
if not specs:
    st.info("Choose at least one model in the sidebar.")
elif not explainers:
    st.info("Choose at least one explainer in the sidebar.")

request = st.session_state.get("explore_request")
showing = request is not None and request == inputs
values = link_values(dataset, split, source, specs, attack, explainers, trajectory, showing)
link.write(values)  # before the results: a class that follows this session starts on them at once
results_area = st.empty()  # replaces the previous run's results at once, so no stale result lingers
if request is not None and not showing:
    results_area.info("The settings changed since the last run: press **Run attack** to see their results.")
elif showing:
    with results_area.container():
        caption = st.empty()  # above the models' panels, filled once every model is done
        try:
            result, fetching = compute(request, picked[0], view, one_per_row=present)
        except ValueError as err:  # settings the attack rejects
            st.error(f"The attack could not run: {err}")
        else:
            if result is not None:
                settings = ", ".join(f"{'max eps' if attack == 'min-eps' and k == 'eps' else k}="
                                     + (f"{v:.4g}" if isinstance(v, float) else f"{v}")
                                     for k, v in result.attack.items() if k not in ("name", "target"))
                computed = sum(m.seconds for m in result.models)
                cached = " (shown from the cache)" if fetching < computed / 2 else ""
                caption.caption(f"Results for: {DATASET_LABELS[dataset]} {request['image'][0]} · "
                                f"{ATTACKS[attack].label} · {settings} · computed in {computed:.2f} s{cached}")
                render(result, view_key(request), view, TABLE_DIGITS[present],
                       f"{st.context.url or 'explore'}?{urlencode(query(values))}")

with st.sidebar.expander("Share this view"):
    base = st.context.url or "explore"
    st.code(f"{base}?{urlencode({k: v for k, v in st.query_params.to_dict().items()})}", language=None,
            wrap_lines=True)
    st.caption("Copy the link (button at its right): it opens this view, results included"
               + (", without the uploaded files" if source == "upload" or len(values["models"]) < len(specs) else "")
               + ".")
