"""What every page shares: cached loaders (models, datasets, the model list), the model picker with
checkpoint upload, and the export buttons. Streamlit-side glue only; the work is in interp_core.

Caching: models are ``st.cache_resource`` (one copy per process, read-only, shared by sessions);
results are ``st.cache_data`` keyed by their inputs in the pages. Per-user state lives only in
``st.session_state``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import os
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st
import torch

from interp_core import paths
from interp_core.data import DATASETS, DatasetNotFound, ImageDataset, load_dataset, load_image_folder
from interp_core.images import ImageIntakeError, read_image
from interp_core.io import write_atomic
from interp_core.models import CheckpointError, available_models, load_model, read_card
from interp_core.runtime import configure_threads, resolve_device
from interp_core.services import figures, jobs

#: Display labels and model input shapes (channels, size) of the registry's datasets.
DATASET_LABELS = {name: info.label for name, info in DATASETS.items()}
IMAGE_SHAPES = {name: (info.channels, info.size) for name, info in DATASETS.items()}


#: What Streamlit imports the first time a page draws a table (st.table, st.dataframe): about a second.
TABLE_MODULES = ("pandas", "pyarrow")


@st.cache_resource
def configure_once() -> int:
    """The server's set-up, at its first page run: one torch thread per request (sessions,
    background training and tests share the machine), and Streamlit's table modules imported in the
    background, so that no later run waits for them (a class of thirty opening its first view
    would otherwise queue behind that import). The thread count."""
    threading.Thread(target=lambda: [importlib.import_module(m) for m in TABLE_MODULES], daemon=True,
                     name="import-table-modules").start()
    return configure_threads(shared=True)


@st.cache_resource
def device() -> torch.device:
    return resolve_device("auto")


def _model_files_fingerprint() -> tuple:
    """Names and modification times of every model file, so new runs invalidate the model list."""
    files = []
    for folder in (paths.checkpoints_dir(), paths.runs_dir(), paths.paper_networks_dir()):
        for root, _, names in os.walk(folder):  # every page run asks: os.walk is several times faster than glob
            for name in names:
                if name.endswith((".safetensors", ".npz", ".evaluation.json")):
                    path = os.path.join(root, name)
                    files.append((path, os.stat(path).st_mtime_ns))
    return tuple(sorted(files))


@functools.lru_cache(maxsize=4)  # not st.cache_data: it would hash the fingerprint and unpickle the table at every call
def _model_table(fingerprint: tuple) -> list[dict]:
    table = [{"name": e.name, "path": str(e.path), "dataset": e.card.dataset, "arch": e.card.arch,
              "method": e.card.method, "source": e.card.source, "metrics": e.card.metrics,
              "modified": e.path.stat().st_mtime, "evaluated": jobs.evaluation_path(e.path).is_file()}
             for e in available_models()]
    # the user's runs first, newest first; then the registry's order
    return sorted(table, key=lambda m: -m["modified"] if m["source"] == "user" else float("inf"))


def model_table(dataset: str | None = None) -> list[dict]:
    """Every model the project finds (shipped, paper networks, finished runs), optionally one dataset."""
    return [dict(m) for m in _model_table(_model_files_fingerprint()) if dataset is None or m["dataset"] == dataset]


@st.cache_resource(show_spinner="Loading model…", max_entries=32)
def get_model(spec: str) -> torch.nn.Module:
    """A model by name or path, in eval mode, weights frozen (only input gradients are needed)."""
    model, _ = load_model(spec, device())
    return model.requires_grad_(False)


@st.cache_resource(show_spinner="Loading dataset…")
def get_dataset(name: str, split: str) -> ImageDataset:
    return load_dataset(name, split, download=False)


def folder_fingerprint(root: str) -> tuple:
    """Class subfolders of ``root`` with their modification times, so a changed folder is read again."""
    folder = Path(root)
    return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_dir()) \
        if folder.is_dir() else ()


@st.cache_resource(show_spinner="Reading the image folder…", max_entries=4)
def get_image_folder(root: str, dataset: str, fingerprint: tuple) -> ImageDataset:
    """The image folder ``root`` (``<class>/<images>``) converted and resized to the input of
    ``dataset``'s models (IMAGE_SHAPES); ``fingerprint`` is folder_fingerprint(root). Raises
    DatasetNotFound (a FileNotFoundError) for a folder without class subfolders or readable images."""
    return load_image_folder(root, dataset)


@st.cache_data(show_spinner=False)
def full_data_source(name: str) -> str | None:
    """Where the full test set was found, or None (then only the demo sample is offered)."""
    try:
        return get_dataset(name, "test").source
    except (DatasetNotFound, OSError, ValueError):
        return None


def dataset_picker(key: str, with_full: bool = True) -> tuple[str, str]:
    """Sidebar choice of dataset and split ("demo" or "test"); returns (name, split)."""
    name = st.sidebar.radio("Dataset", list(DATASET_LABELS), format_func=DATASET_LABELS.get, key=f"{key}_dataset",
                            horizontal=True)
    options = ["demo"] + (["test"] if with_full and full_data_source(name) else [])
    split = st.sidebar.radio("Images", options, key=f"{key}_split", horizontal=True,
                             format_func=lambda s: "demo sample (300)" if s == "demo" else "full test set",
                             help="The demo sample ships with the project; the full test set is used when a data "
                                  "directory is configured (INTERP_CORE_DATA_DIR or ../shared/data).")
    return name, split


def _save_upload(data: bytes, suffix: str) -> Path:
    """Uploaded bytes into the cache, named by their hash (same file, same path)."""
    path = paths.cache_dir() / "uploads" / f"{hashlib.sha256(data).hexdigest()[:20]}{suffix}"
    if not path.exists():
        write_atomic(path, data)
    return path


def default_models(dataset: str, prefer: tuple[str, ...] = ("normal",)) -> list[str]:
    """The models ``model_picker`` selects at first: the first shipped model (else any) of each
    method in ``prefer``, else the first model of ``dataset``."""
    table = model_table(dataset)
    shipped_first = sorted(table, key=lambda m: m["source"] == "user")
    return [next(m["name"] for m in shipped_first if m["method"] == method) for method in prefer
            if any(m["method"] == method for m in table)] or [m["name"] for m in table][:1]


def model_picker(dataset: str, key: str, prefer: tuple[str, ...] = ("normal",), multiple: bool = True) -> list[str]:
    """Sidebar choice of models for ``dataset``: the registered ones plus an uploaded checkpoint;
    the user's finished runs are listed first (newest first) with their method and status; selected
    at first: the first shipped model (else any) of each method in ``prefer``.
    Returns model specs (names, or the path of a validated upload)."""
    table = model_table(dataset)
    names = [m["name"] for m in table]
    default = default_models(dataset, prefer)
    labels = {m["name"]: f"{m['name']}  ·  {m['method']} ("
                         + (f"your run, {'evaluated' if m['evaluated'] else 'finished'})" if m["source"] == "user"
                            else f"{m['source']})") for m in table}
    if multiple:
        chosen = st.sidebar.multiselect("Models (side by side)", names, default=default,
                                        format_func=labels.get, key=f"{key}_models_{dataset}")
    else:
        one = st.sidebar.selectbox("Model", names, index=names.index(default[0]) if default else 0,
                                   format_func=labels.get, key=f"{key}_model_{dataset}")
        chosen = [one] if one else []
    upload = st.sidebar.file_uploader("…or upload a checkpoint (.safetensors)", type=["safetensors"],
                                      key=f"{key}_ckpt")
    if upload is not None:
        spec = validated_checkpoint(upload.getvalue(), dataset, upload.name)
        if spec is None:
            clear_results(key, upload.file_id)
        else:
            chosen = (chosen + [spec]) if multiple else [spec]
    if not table and not chosen:
        st.sidebar.warning(f"No {DATASET_LABELS[dataset]} model found; train one on the Train page.")
    return chosen


def clear_results(key: str, file_id: str) -> None:
    """Forget the results of page ``key`` (its ``st.session_state[f"{key}_request"]``) once for the
    refused upload ``file_id``, so a previous input's results do not stay under the error; results
    asked for afterwards, with the refused file still in its uploader, are kept."""
    if st.session_state.get(f"{key}_refused_upload") != file_id:
        st.session_state[f"{key}_refused_upload"] = file_id
        st.session_state.pop(f"{key}_request", None)


def validated_checkpoint(data: bytes, dataset: str, name: str) -> str | None:
    """Path of an uploaded checkpoint (file name ``name``) that loads and fits ``dataset``; otherwise
    an st.error naming the file, and None. The upload is just not used."""
    path = _save_upload(data, ".safetensors")
    try:
        card = read_card(path)
        if card.dataset != dataset:
            raise CheckpointError(f"this checkpoint is for {card.dataset}, not {DATASET_LABELS[dataset]}")
        get_model(str(path))
    except CheckpointError as err:
        st.sidebar.error(f"Checkpoint {name} not used: {str(err).replace(f'{path}: ', '').replace(str(path), name)}")
        return None
    return str(path)


def model_label(spec: str) -> str:
    """Display name of a model spec (uploaded files show their card's name)."""
    return f"{read_card(spec).name} (uploaded)" if spec.endswith(".safetensors") and os.sep in spec else spec


#: The intake's fits (interp_core.images.FITS; pad first, the default) and MNIST colour choices, as the
#: sidebar names them.
FIT_LABELS = {"pad": "pad", "crop": "crop", "stretch": "stretch"}
INVERT_LABELS = {"auto": "auto", False: "as is", True: "inverted"}


def input_preview(x: np.ndarray) -> np.ndarray:
    """An image x (C, H, W) in [0, 1] drawn as "the model input", its size in the caption: RGB uint8."""
    return figures.panels_image([("model input", [(f"{x.shape[2]}x{x.shape[1]}", figures.image_rgb(x))], None)],
                                cell=112)


def uploaded_image(dataset: str, key: str) -> np.ndarray | None:
    """An uploaded image as float32 (1, C, H, W) in [0, 1] for ``dataset``, converted by
    interp_core.images.read_image (fitted to the square and, for MNIST, inverted as the sidebar says)
    and shown as converted beside its original size and the intake's notes, with a warning when it
    looks unlike the dataset's images; or None: nothing uploaded, or a file that cannot be used (one st.error naming the file,
    and the page's previous results cleared, see clear_results)."""
    channels, size = IMAGE_SHAPES[dataset]
    upload = st.sidebar.file_uploader(f"Image (converted to {size}×{size} for {DATASET_LABELS[dataset]})",
                                      type=["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"],
                                      key=f"{key}_image")
    if upload is None:
        return None
    fit = st.sidebar.radio("Fit to the square", list(FIT_LABELS), format_func=FIT_LABELS.get, horizontal=True, key=f"{key}_fit",
                           help="pad: the whole picture on its own background; crop: its centre; stretch: "
                                "squeezed to the square")
    invert: bool | str = False
    if channels == 1:
        invert = st.sidebar.radio("Colours", ["auto", False, True], format_func=INVERT_LABELS.get, horizontal=True,
                                  key=f"{key}_invert", help="MNIST digits are light strokes on black; auto inverts "
                                                            "an image whose border is light (ink on paper)")
    try:
        result = read_image(upload.getvalue(), dataset, name=upload.name, fit=fit, invert=invert)
    except ImageIntakeError as err:
        st.error(f"Image not used: {err}")
        clear_results(key, upload.file_id)
        return None
    width, height = result.original_size
    shown, text = st.columns([1, 4])
    shown.image(input_preview(result.x.numpy()))
    text.markdown(f"**{upload.name}**: {result.format}, {width}×{height} pixels, mode {result.original_mode}; "
                  f"the model sees it {'grayscale' if channels == 1 else 'RGB'} at {size}×{size}.")
    text.caption("Intake: " + ("; ".join(result.notes) if result.notes else "no conversion needed") + ".")
    if result.unlike:
        st.warning(f"This image looks unlike {DATASET_LABELS[dataset]}'s: {result.unlike}. The models were trained "
                   "on such images only; their answer on this one says little.", icon=":material/image_search:")
    return result.x[None].numpy()


@contextlib.contextmanager
def progress_bar(label: str):
    """A progress bar for a long library call: yields ``progress(done, total)`` for interp_core's
    callbacks, shows the time left (from the pace so far), and removes the bar when done. Use it
    inside the cached function, so a cache hit replays nothing visible."""
    bar, start = st.progress(0.0, text=label), time.perf_counter()

    def tick(done: int, total: int) -> None:
        left = (time.perf_counter() - start) / max(done, 1) * (total - done)
        bar.progress(min(done / max(total, 1), 1.0), text=f"{label} {done}/{total} · about {left:.0f} s left")

    yield tick
    bar.empty()


Export = str | bytes | Callable[[], str | bytes] | None


def export_buttons(key: str, *, csv: Export = None, json: Export = None, npz: Export = None, png: Export = None,
                   html: Export = None, stem: str = "results") -> None:
    """One row of download buttons for a results view (figures also have plotly's PNG button). Each
    export is its content, or a function that builds it when the button is clicked; ``html`` is
    the view as slides (interp_core.services.slides)."""
    items = [(csv, "CSV metrics", "csv", "text/csv"), (json, "JSON metrics", "json", "application/json"),
             (npz, ".npz tensors", "npz", "application/octet-stream"), (png, "PNG figure", "png", "image/png"),
             (html, "HTML slides", "html", "text/html")]
    items = [i for i in items if i[0] is not None]
    row = st.container(horizontal=True)  # one block for the row, not a column per button
    for data, label, ext, mime in items:
        row.download_button(label, data, icon=":material/download:", file_name=f"{stem}.{ext}", mime=mime,
                            key=f"{key}_{ext}",
                            on_click="ignore")
