"""Where the project looks for things: one place, so the CLI, the app and the tests agree.

Each location can be set by an environment variable; the defaults suit a clone of the repository
with the read-only ``shared/`` folder beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def data_dir() -> Path | None:
    """User-configured dataset root (``INTERP_CORE_DATA_DIR``), or None."""
    value = os.environ.get("INTERP_CORE_DATA_DIR")
    return Path(value).expanduser() if value else None


def image_folder() -> Path | None:
    """An image folder offered by the app (``INTERP_CORE_IMAGE_FOLDER``: ROOT/<class>/<images>), or None."""
    value = os.environ.get("INTERP_CORE_IMAGE_FOLDER")
    return Path(value).expanduser() if value else None


def shared_dir() -> Path:
    """The project's shared folder (``INTERP_CORE_SHARED_DIR``, default ``../shared``)."""
    return Path(os.environ.get("INTERP_CORE_SHARED_DIR", PROJECT_ROOT.parent / "shared")).expanduser()


def cache_dir() -> Path:
    """Where unpacked datasets are cached (``INTERP_CORE_CACHE_DIR``, default ~/.cache/interp_core)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "interp_core"
    return Path(os.environ.get("INTERP_CORE_CACHE_DIR", default)).expanduser()


def checkpoints_dir() -> Path:
    """Checkpoints shipped with the project."""
    return PROJECT_ROOT / "checkpoints"


def paper_networks_dir() -> Path:
    """The authors' networks as .npz (``INTERP_CORE_PAPER_NETWORKS``, default shared/paper-networks)."""
    value = os.environ.get("INTERP_CORE_PAPER_NETWORKS")
    return Path(value).expanduser() if value else shared_dir() / "paper-networks"


def runs_dir() -> Path:
    """The user's training runs (``INTERP_CORE_RUNS_DIR``, default ./runs in the project)."""
    return Path(os.environ.get("INTERP_CORE_RUNS_DIR", PROJECT_ROOT / "runs")).expanduser()


def display(path: str | os.PathLike) -> str:
    """A path as shown in results and messages: relative to the project when it lies beside it
    (``../shared/data/...``), so committed results carry no machine-specific prefix."""
    path = Path(path).resolve()
    try:
        return os.path.relpath(path, PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT.parent) else str(path)
    except ValueError:
        return str(path)
