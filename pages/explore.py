"""Explore: attack one image on one or more models and compare interpretation maps and discrepancies.

Widgets -> ``run_explore`` (one cached call into interp_core.services.explore) -> render.
"""

import random

import numpy as np
import streamlit as st
import torch

from app_support.attack_controls import attack_controls, make_attack_fn
from app_support.common import (DATASET_LABELS, IMAGE_SHAPES, dataset_picker, export_buttons, folder_fingerprint,
                              get_dataset, get_image_folder, get_model, model_label, model_picker, uploaded_image)
from interp_core import paths
from interp_core.services import figures
from interp_core.attacks import ATTACKS
from interp_core.data import ImageDataset
from interp_core.services.explore import (BOUND_DEFINITION, METRIC_DEFINITIONS, ExploreResult, explore, to_csv, to_json,
                                          to_npz)
from interp_core.interpret import EXPLAINERS, LABELS
from app_support.layout import setup_page

setup_page("Explore")

GALLERY_LIMIT = 2000  # predictions for the gallery filter cover the first images of the split
DEFAULT_EXPLAINERS = ["cam", "gradcampp", "saliency", "ig"]
THUMBS = 12
THUMB_PX = 80
IMAGE_PX = 150
TOPK = 5


def source_data(source: tuple) -> ImageDataset:
    """The images of a gallery: ("dataset", name, split) or ("folder", root, dataset, fingerprint)."""
    return get_image_folder(*source[1:]) if source[0] == "folder" else get_dataset(*source[1:])


@st.cache_data(show_spinner="Classifying the gallery…", max_entries=16)
def gallery_predictions(spec: str, source: tuple) -> np.ndarray:
    """Predictions of ``spec`` on the first GALLERY_LIMIT images of the gallery ``source``, (n,)."""
    images = source_data(source).images[:GALLERY_LIMIT]
    model = get_model(spec)
    with torch.no_grad():
        return torch.cat([model(images[i:i + 500]).argmax(1) for i in range(0, len(images), 500)]).numpy()


def class_map(classes: list[str], model_classes: list[str]) -> np.ndarray | None:
    """The model class index of each of ``classes`` when every one is a model class name (case
    ignored), else None."""
    lower = [c.lower() for c in model_classes]
    return np.array([lower.index(c.lower()) for c in classes]) if all(c.lower() in lower for c in classes) else None


@st.cache_data(show_spinner=False, max_entries=64)
def run_explore(x: np.ndarray, y: int | None, class_names: tuple, specs: tuple, attack: str, params: tuple,
                target: int | None, explainers: tuple, trajectory: str | None) -> ExploreResult:
    """The one call into interp_core per Run press, cached by every input."""
    models = {model_label(s): get_model(s) for s in specs}
    return explore(models, torch.from_numpy(x), None if y is None else torch.tensor([y]),
                   make_attack_fn(attack, dict(params)), list(explainers),
                   attack_info={"name": attack, **dict(params), "target": target},
                   target=None if target is None else torch.tensor([target]), targeted=ATTACKS[attack].targeted,
                   class_names=class_names,
                   trajectory_explainer=trajectory)


def pick_gallery_image(source: tuple, spec: str | None, model_classes: list[str],
                       key: str = "explore") -> tuple[np.ndarray, int | None, str] | None:
    """Gallery with true and predicted labels, filters and a random pick; returns (x, y, caption) where
    y is the true class as a model class index, or None when the gallery's classes are not the
    model's (then the attack uses the clean prediction)."""
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
    if st.session_state.get(f"{key}_index") not in options:
        st.session_state[f"{key}_index"] = options[0]

    def draw_random() -> None:
        st.session_state[f"{key}_index"] = random.choice(options)

    c3.button("Random image", icon=":material/casino:", on_click=draw_random, key=f"{key}_random")

    def describe(i: int) -> str:
        pred = f" · pred {model_classes[preds[i]]}" if preds is not None else ""
        return f"#{i} · true {data.class_names[labels[i]]}{pred}"

    index = st.selectbox("Image", options, format_func=describe, key=f"{key}_index")
    start = options.index(index) - options.index(index) % THUMBS
    shown = options[start:start + THUMBS]
    short, short_pred = [name[:4] for name in data.class_names], [name[:4] for name in model_classes]
    st.image(figures.panels_image([("true / predicted" if preds is not None else "true class", [
        (f"#{i} {short[labels[i]]}" + (f"/{short_pred[preds[i]]}" if preds is not None else ""),
         figures.image_rgb(data.images[i].numpy())) for i in shown], None)], cell=THUMB_PX))
    y = None if to_model is None else int(to_model[labels[index]])
    return data.images[index:index + 1].numpy(), y, describe(index)


def pick_folder_image(dataset: str, spec: str | None) -> tuple[np.ndarray, int | None, str] | None:
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
    x, y, caption = picked
    return x, y, f"folder image {caption}" + ("" if mapped else " (y = clean prediction)")


def render(res: ExploreResult) -> None:
    names = res.class_names
    cols = st.columns(len(res.models))
    for col, m in zip(cols, res.models):
        with col:
            st.markdown(f"#### {m.model}")
            y, t = int(m.y[0]), int(m.target[0])
            # image text stays ASCII: the PIL fallback font has no Greek or arrows
            st.image(figures.panels_image([(f"Linf {m.linf[0]:.4f} | L2 {m.l2[0]:.3f}", [
                (f"clean -> {names[m.clean_pred[0]]} ({m.clean_prob[0].max():.0%})", figures.image_rgb(res.x[0])),
                (f"adv -> {names[m.adv_pred[0]]} ({m.adv_prob[0].max():.0%})", figures.image_rgb(m.x_adv[0])),
                (f"perturbation x{0.5 / max(float(m.linf[0]), 1e-12):.1f}", figures.image_rgb(m.perturbation[0]))],
                None)], cell=IMAGE_PX))
            for label, prob in (("clean", m.clean_prob[0]), ("adversarial", m.adv_prob[0])):
                top = prob.argsort()[::-1][:TOPK]
                st.markdown(f"top-{TOPK} {label}: " + " · ".join(f"**{names[c]}** {prob[c]:.1%}" for c in top))
            holds = "t beats y at x′: the bound applies" if m.bound_applies[0] else "t does not beat y at x′"
            st.markdown(f"y = **{names[y]}**, t = **{names[t]}** · D2 of CAM/(h·w) = **{m.d2_cam_hw[0]:.4f}** "
                        f"≥ bound ½(Z_y − Z_t) = **{m.bound[0]:.4f}** ({holds})")

    st.subheader("Interpretation maps")
    c1, c2 = st.columns(2)
    cls = c1.segmented_control("Maps of", ["true class y", "attack class t"], default="true class y", required=True,
                               key="explore_cls")
    grid = c2.segmented_control("Grid", ["native", "input"], default="native", required=True, key="explore_grid")
    st.caption("Clean, adversarial and difference maps share ONE symmetric colour scale per row "
               "(RdBu: red negative, blue positive; the bar gives the range). CAM-family maps live on the "
               "feature grid; \"input\" upsamples them bilinearly for display only.")
    for name in res.models[0].maps:
        for col, i in zip(st.columns(len(res.models)), range(len(res.models))):
            col.image(figures.maps_image(res, name, i, cls=0 if cls.startswith("true") else 1,
                                          upsampled=grid == "input"))

    st.subheader("Discrepancy numbers")
    st.table([{"model": m.model, "explainer": LABELS.get(e, e),
               **{k: f"{float(v[0]):.6g}" for k, v in ms.metrics.items()}}
              for m in res.models for e, ms in m.maps.items()])
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in METRIC_DEFINITIONS.items())
                + f"\n- **bound**: {BOUND_DEFINITION}")

    if res.models[0].trajectory is not None:
        trajectory_view(res)

    st.subheader("Export")
    # built when clicked (deferred), so showing the results does not pay for every export
    export_buttons("explore", csv=lambda: to_csv(res), json=lambda: to_json(res), npz=lambda: to_npz(res),
                   png=lambda: figures.to_png(res), stem="explore")


@st.fragment
def trajectory_view(res: ExploreResult) -> None:
    """Slider over attack steps: image, prediction and maps at each step (reruns only this part)."""
    traj0 = res.models[0].trajectory
    last = traj0.x.shape[0] - 1
    st.subheader(f"Attack step by step ({LABELS.get(traj0.explainer, traj0.explainer)} maps)")
    step = st.slider("Attack step", 0, last, last, key="explore_step")
    for m in res.models:
        traj = m.trajectory
        y, t = int(m.y[0]), int(m.target[0])
        st.markdown(f"**{m.model}**")
        st.image(figures.step_image(traj, res.class_names, y, t, step))
        st.plotly_chart(figures.trajectory_figure(traj, res.class_names, y, t, step=step), key=f"traj_{m.model}")


st.title("Explore an attack")
dataset, split = dataset_picker("explore")
specs = model_picker(dataset, "explore")
attack, params, target = attack_controls(dataset, get_dataset(dataset, "demo").class_names, key="explore")
explainers = st.sidebar.multiselect("Explainers", list(EXPLAINERS), default=DEFAULT_EXPLAINERS,
                                    format_func=LABELS.get, key="explore_explainers")
trajectory = st.sidebar.selectbox("Maps along the attack steps", explainers or ["cam"], format_func=LABELS.get,
                                  key="explore_trajectory",
                                  help="The explainer recorded at every attack step (CAM is the cheapest).")

folder = paths.image_folder()
source = st.radio("Image source", ["gallery"] + (["folder"] if folder else []) + ["upload"], horizontal=True,
                  key="explore_source", format_func={"gallery": "dataset gallery", "upload": "upload an image",
                                                     "folder": f"image folder ({folder.name if folder else ''})"}.get)
if source == "gallery":
    names = get_dataset(dataset, "demo").class_names
    picked = pick_gallery_image(("dataset", dataset, split), specs[0] if specs else None, names)
elif source == "folder":
    picked = pick_folder_image(dataset, specs[0] if specs else None)
else:
    x_up = uploaded_image(dataset, "explore")
    names = get_dataset(dataset, "demo").class_names
    label = st.selectbox("True class of the uploaded image", ["use the clean prediction"] + names,
                         key="explore_upload_label")
    picked = None if x_up is None else (x_up, None if label not in names else names.index(label), "uploaded image")

ready = picked is not None and specs and explainers
if st.button("Run attack", type="primary", disabled=not ready, key="explore_run"):
    x, y, caption = picked
    st.session_state["explore_request"] = dict(
        x=x, y=y, class_names=tuple(get_dataset(dataset, "demo").class_names), specs=tuple(specs), attack=attack,
        params=tuple(sorted(params.items())), target=target, explainers=tuple(explainers),
        trajectory=trajectory if trajectory in explainers else None)
    st.session_state["explore_caption"] = (f"{DATASET_LABELS[dataset]} {caption} · {ATTACKS[attack].label} · "
                                           + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                       for k, v in params.items()))
if not specs:
    st.info("Choose at least one model in the sidebar.")
elif not explainers:
    st.info("Choose at least one explainer in the sidebar.")

request = st.session_state.get("explore_request")
if request is not None and request["class_names"] != tuple(get_dataset(dataset, "demo").class_names):
    request = None  # results of the other dataset: not shown beside this dataset's controls
if request is not None:
    try:
        with st.spinner("Attacking and explaining…"):
            result = run_explore(**request)
    except (ValueError, RuntimeError) as err:
        st.error(f"The attack could not run: {err}")
    else:
        st.caption(f"Results for: {st.session_state['explore_caption']} · computed in "
                   f"{sum(m.seconds for m in result.models):.2f} s")
        render(result)
