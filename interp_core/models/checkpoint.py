"""Self-describing checkpoints: one ``.safetensors`` file holding the weights and a JSON card.

The card (stored in the safetensors metadata under ``interp_core.card``) names the architecture
and its arguments, the dataset, the training method and its hyperparameters, measured metrics,
the source (``paper``, ``project`` or ``user``), credit and the library version. Loading never
unpickles anything: safetensors holds raw tensors only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from interp_core import __version__
from interp_core.io import atomic_write
from interp_core.models.architectures import ARCHITECTURES, INITS, CAMNet, init_authors_

CARD_KEY = "interp_core.card"


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
    version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("card is not a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def build_model(arch: str, in_channels: int, num_classes: int, init: str = "torch") -> CAMNet:
    """A freshly initialized network of a registered architecture; ``init`` is one of ``INITS``
    ("torch": PyTorch's defaults, "authors": :func:`init_authors_`)."""
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    if init not in INITS:
        raise ValueError(f"unknown initialization {init!r}; known: {list(INITS)}")
    model = ARCHITECTURES[arch](in_channels=in_channels, num_classes=num_classes)
    return init_authors_(model) if init == "authors" else model


def save_checkpoint(model: CAMNet, card: ModelCard, path: str | os.PathLike) -> Path:
    """Write weights and card atomically (``interp_core.io.atomic_write``)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(tensors, tmp, metadata={CARD_KEY: card.to_json()})
    return Path(path)


def read_card(path: str | os.PathLike) -> ModelCard:
    """The card of a checkpoint, without loading its weights."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable .safetensors checkpoint ({err})") from None
    if CARD_KEY not in meta:
        raise CheckpointError(f"{path}: safetensors file without an interp_core model card")
    try:
        return ModelCard.from_json(meta[CARD_KEY])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: model card is malformed ({err})") from None


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[CAMNet, ModelCard]:
    """Rebuild the model a checkpoint describes, in eval mode, on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    card = read_card(path)
    model = build_model(card.arch, card.in_channels, card.num_classes)
    try:
        state = load_file(str(path))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as err:
        raise CheckpointError(f"{path}: weights do not fit architecture {card.arch!r} ({err})") from None
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite weights in {bad[:3]}")
    return model.to(device).eval(), card
