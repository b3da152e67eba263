"""Every model the project can find, by name: shipped checkpoints (``checkpoints/``), the paper's
networks (``.npz`` in the paper-networks folder), and the user's runs (``runs/``).

``load_model(spec)`` accepts a name from ``available_models()`` or a path to a ``.safetensors``
checkpoint, a paper ``.npz`` or an authors' ``.pkl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from interp_core import paths
from interp_core.models.architectures import CAMNet
from interp_core.models.checkpoint import CheckpointError, ModelCard, load_checkpoint, read_card
from interp_core.models.paper import load_paper_network


@dataclass(frozen=True)
class ModelEntry:
    """A model the project can load: its name, file and card."""

    name: str
    path: Path
    card: ModelCard


def available_models(dataset: str | None = None) -> list[ModelEntry]:
    """Shipped checkpoints, then the paper's networks, then the user's runs; optionally one dataset.

    A paper network already shipped as a converted checkpoint is listed once, under the shipped
    name. Unreadable files are skipped, and so are the checkpoints of runs that did not finish
    (their card says ``finished: false``; they still load by path and resume).
    """
    entries: dict[str, ModelEntry] = {}
    for folder in (paths.checkpoints_dir(), paths.runs_dir()):
        for path in sorted(folder.glob("**/*.safetensors")) if folder.is_dir() else []:
            try:
                card = read_card(path)
            except CheckpointError:
                continue
            if card.metrics.get("finished") is False:
                continue
            entries.setdefault(card.name, ModelEntry(card.name, path, card))
    converted = {e.card.converted_from for e in entries.values()}
    folder = paths.paper_networks_dir()
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        if path.stem not in entries and path.stem not in converted:
            try:
                _, card = load_paper_network(path)
            except CheckpointError:
                continue
            entries[path.stem] = ModelEntry(path.stem, path, card)
    found = list(entries.values())
    return [e for e in found if dataset is None or e.card.dataset == dataset]


def load_model(spec: str | Path, device: str | torch.device = "cpu") -> tuple[CAMNet, ModelCard]:
    """Model and card from a registered name or a file path; the model is in eval mode."""
    path = Path(spec)
    if not path.is_file():
        match = [e for e in available_models() if e.name == str(spec)]
        if not match:
            raise CheckpointError(
                f"no model named {str(spec)!r} and no such file; `python -m interp_core models` lists them"
            )
        path = match[0].path
    if path.suffix in (".npz", ".pkl"):
        model, card = load_paper_network(path)
        return model.to(device), card
    return load_checkpoint(path, device)
