"""Self-describing checkpoints: one ``.safetensors`` file holding the weights and a JSON card.

The card (stored in the safetensors metadata under ``interp_core.card``) names the architecture
and its arguments, the dataset, the training method and its hyperparameters, measured metrics,
the source (``paper``, ``project`` or ``user``), credit and the library version. Loading never
unpickles anything: safetensors holds raw tensors only.

Loading checks, in order, each failure a ``CheckpointError`` of one sentence: the file exists and
is at most ``max_bytes`` (checked before reading it); it starts with a safetensors header; the
header parses; it holds a model card whose fields have the right types and fit the card's dataset;
the architecture and the activation are known; every tensor the architecture needs is there with its shape and a
floating-point type, and no other (the first mismatch is named, with both shapes, compared on a
weightless model before anything is allocated); the weights are finite.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from interp_core import __version__
from interp_core.data import DATASETS
from interp_core.io import atomic_write
from interp_core.models.architectures import ACTIVATIONS, ARCHITECTURES, INITS, CAMNet, init_authors_

CARD_KEY = "interp_core.card"
MAX_CHECKPOINT_BYTES = 200_000_000
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message says why and what to do."""


@dataclass
class ModelCard:
    """What a checkpoint is: enough to rebuild, describe and compare the model."""

    name: str
    arch: str
    dataset: str
    method: str
    in_channels: int
    num_classes: int
    source: str = "user"
    hyperparameters: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    description: str = ""
    credit: str = ""
    converted_from: str = ""
    #: The network's activation (``ACTIVATIONS``); cards written before it existed are ReLU networks.
    activation: str = "relu"
    version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        """The card of a JSON text; ValueError (saying which field) for a text that is not one: not a
        JSON object, a required field missing, a field of the wrong type, or in_channels /
        num_classes not positive. Unknown fields are ignored."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("it is not valid JSON") from None
        except RecursionError:
            raise ValueError("it is nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("it is not a JSON object")
        kinds = {"str": str, "int": int, "dict": dict}
        values = {}
        for f in fields(cls):
            if f.name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise ValueError(f"field {f.name!r} is missing")
                continue
            value, kind = data[f.name], kinds[f.type]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"field {f.name!r} is not a{'n' if kind is int else ''} {f.type}")
            values[f.name] = value
        for name in ("in_channels", "num_classes"):
            if values[name] < 1:
                raise ValueError(f"field {name!r} is {values[name]}, not a positive number")
        return cls(**values)


def build_model(arch: str, in_channels: int, num_classes: int, init: str = "torch",
                activation: str = "relu") -> CAMNet:
    """A freshly initialized network of a registered architecture; ``init`` is one of ``INITS``
    ("torch": PyTorch's defaults, "authors": :func:`init_authors_`), ``activation`` one of
    ``ACTIVATIONS``."""
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"unknown activation {activation!r}; known: {list(ACTIVATIONS)}")
    if init not in INITS:
        raise ValueError(f"unknown initialization {init!r}; known: {list(INITS)}")
    model = ARCHITECTURES[arch](in_channels=in_channels, num_classes=num_classes)
    model.softplus_beta = ACTIVATIONS[activation]
    return init_authors_(model) if init == "authors" else model


def save_checkpoint(model: CAMNet, card: ModelCard, path: str | os.PathLike) -> Path:
    """Write weights and card atomically (``interp_core.io.atomic_write``)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(tensors, tmp, metadata={CARD_KEY: card.to_json()})
    return Path(path)


def check_file_size(path: Path, max_bytes: int, what: str = "checkpoint") -> None:
    """Refuse a missing file, or one of more than ``max_bytes``, before reading any of it."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(f"{path}: the file is {size / 1e6:,.1f} MB; a {what} may be at most "
                              f"{max_bytes / 1e6:,.1f} MB")


def _read_header(path: Path, max_bytes: int) -> tuple[dict[str, str], dict[str, tuple[tuple[int, ...], str]]]:
    """The metadata and {tensor name: (shape, dtype)} of a safetensors file, no tensor read.

    A safetensors file starts with its header's length n (8 bytes, little-endian) and n bytes of
    JSON; a file that does not is "not a safetensors file"; one whose header the safetensors
    library refuses (bad JSON, offsets, dtypes) has an invalid header.
    """
    check_file_size(path, max_bytes)
    with open(path, "rb") as f:
        start = f.read(9)
    length = int.from_bytes(start[:8], "little") if len(start) == 9 else 0
    if not 2 <= length <= path.stat().st_size - 8 or start[8:9] != b"{":
        raise CheckpointError(f"{path}: not a safetensors file (it does not start with a safetensors header)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: the safetensors header is invalid ({type(err).__name__})") from None
    return meta, tensors


def _card(path: Path, meta: dict[str, str]) -> ModelCard:
    """The model card of a checkpoint's metadata, checked against its dataset's input."""
    if CARD_KEY not in meta:
        raise CheckpointError(f"{path}: a safetensors file without an interp_core model card")
    try:
        card = ModelCard.from_json(meta[CARD_KEY])
    except ValueError as err:
        raise CheckpointError(f"{path}: the model card is invalid ({err})") from None
    if card.activation not in ACTIVATIONS:
        raise CheckpointError(f"{path}: the model card names an unknown activation {card.activation!r}; known: "
                              f"{list(ACTIVATIONS)}")
    if card.dataset in DATASETS:
        channels, classes = DATASETS[card.dataset].channels, DATASETS[card.dataset].class_names
        if (card.in_channels, card.num_classes) != (channels, len(classes)):
            raise CheckpointError(
                f"{path}: the model card does not fit its dataset: {card.dataset} models take {channels} input "
                f"channel(s) and {len(classes)} classes, the card says {card.in_channels} and {card.num_classes}")
    return card


def read_card(path: str | os.PathLike, max_bytes: int = MAX_CHECKPOINT_BYTES) -> ModelCard:
    """The card of a checkpoint, without loading its weights (checks as in :func:`load_checkpoint`)."""
    path = Path(path)
    meta, _ = _read_header(path, max_bytes)
    return _card(path, meta)


def _check_fit(path: Path, card: ModelCard, tensors: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """Every tensor the card's architecture needs is in the file, with its shape and a float dtype,
    and no other; compared on a weightless (meta-device) model, so nothing is allocated."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in
                        build_model(card.arch, card.in_channels, card.num_classes).state_dict().items()}
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except (RuntimeError, ValueError, OverflowError) as err:
        raise CheckpointError(f"{path}: the model card describes a network that cannot be built ({err})") from None
    unfit = f"{path}: weights do not fit architecture {card.arch!r}"
    for key, shape in expected.items():
        if key not in tensors:
            raise CheckpointError(f"{unfit}: tensor {key!r} is missing")
        if tensors[key][0] != shape:
            raise CheckpointError(f"{unfit}: tensor {key!r} has shape {tensors[key][0]} in the file, {shape} in "
                                  f"the architecture (in_channels={card.in_channels}, num_classes={card.num_classes})")
        if tensors[key][1] not in FLOAT_DTYPES:
            raise CheckpointError(f"{unfit}: tensor {key!r} is stored as {tensors[key][1]}, not as floating point")
    extra = next((k for k in tensors if k not in expected), None)
    if extra is not None:
        raise CheckpointError(f"{unfit}: the file has a tensor {extra!r} that the architecture does not have")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[CAMNet, ModelCard]:
    """Rebuild the model a checkpoint describes, in eval mode, on ``device``; CheckpointError (one
    sentence) for any file that cannot be used (see the module docstring for the checks)."""
    path = Path(path)
    meta, tensors = _read_header(path, max_bytes)
    card = _card(path, meta)
    _check_fit(path, card, tensors)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: the weights cannot be read ({type(err).__name__})") from None
    bad = next((k for k, v in state.items() if not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(f"{path}: tensor {bad!r} holds non-finite values (NaN or inf)")
    model = build_model(card.arch, card.in_channels, card.num_classes, activation=card.activation)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), card
