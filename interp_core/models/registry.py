"""Every model the project can find, by name: shipped checkpoints (``checkpoints/``), the paper's
networks (``.npz`` in the paper-networks folder), and the user's runs (``runs/``).

``load_model(spec)`` accepts a name from ``available_models()`` or a path to a ``.safetensors``
checkpoint, a paper ``.npz`` or an authors' ``.pkl``.

Listing reads no weights: checkpoint cards come from the safetensors headers, paper networks'
cards from their file names (``card_from_name``); weights are read when a model is loaded. The
listing is cached until a model folder (or one of its subfolders) changes its modification time,
which adding, removing or renaming a file does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from interp_core import paths
from interp_core.models.architectures import CAMNet
from interp_core.models.checkpoint import CheckpointError, ModelCard, load_checkpoint, read_card
from interp_core.models.paper import card_from_name, load_paper_network


@dataclass(frozen=True)
class ModelEntry:
    """A model the project can load: its name, file and card."""

    name: str
    path: Path
    card: ModelCard


def available_models(dataset: str | None = None) -> list[ModelEntry]:
    """Shipped checkpoints, then the paper's networks, then the user's runs; optionally one dataset.

    A paper network already shipped as a converted checkpoint is listed once, under the shipped
    name. Unreadable checkpoints are skipped (a paper network is only read when loaded), and so are
    the checkpoints of runs that did not finish (their card says ``finished: false``; they still
    load by path and resume).
    """
    key = _folders_fingerprint()
    if _CACHE.get("key") != key:
        _CACHE.update(key=key, entries=_list_models())  # one assignment each: safe across app threads
    return [e for e in _CACHE["entries"] if dataset is None or e.card.dataset == dataset]


_CACHE: dict = {}


def _model_folders() -> tuple[Path, Path, Path]:
    return paths.checkpoints_dir(), paths.paper_networks_dir(), paths.runs_dir()


def _folders_fingerprint() -> tuple:
    """(folder, modification time in ns) of every model folder and subfolder (absent ones too)."""
    stamps, pending = [], [str(folder) for folder in _model_folders()]
    while pending:
        folder = pending.pop()
        try:
            stamps.append((folder, os.stat(folder).st_mtime_ns))
            with os.scandir(folder) as entries:
                pending.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            stamps.append((folder, None))
    return tuple(stamps)


def _list_models() -> list[ModelEntry]:
    checkpoints, paper_networks, runs = _model_folders()
    entries: dict[str, ModelEntry] = {}
    for folder in (checkpoints, runs):
        for path in sorted(folder.glob("**/*.safetensors")) if folder.is_dir() else []:
            try:
                card = read_card(path)
            except CheckpointError:
                continue
            if card.metrics.get("finished") is False:
                continue
            entries.setdefault(card.name, ModelEntry(card.name, path, card))
    converted = {e.card.converted_from for e in entries.values()}
    for path in sorted(paper_networks.glob("*.npz")) if paper_networks.is_dir() else []:
        if path.stem not in entries and path.stem not in converted:
            card = card_from_name(path.stem)
            if card is None:  # a name outside the authors' scheme: the weights tell what it is
                try:
                    _, card = load_paper_network(path)
                except CheckpointError:
                    continue
            entries[path.stem] = ModelEntry(path.stem, path, card)
    return list(entries.values())


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
