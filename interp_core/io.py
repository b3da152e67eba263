"""Files, written and read one way across the project: atomic writes (checkpoints, trainer state,
dataset caches, job files, uploads), CSV text of result rows, compressed .npz bytes of arrays
(exports), and pickles restricted to plain numpy arrays (the authors' network files, the CIFAR-10
batches)."""

from __future__ import annotations

import csv
import io
import os
import pickle
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; on success it replaces ``path`` in one rename,
    so a crash mid-write leaves the previous file intact (and readers never see half a file). The
    folder is created if missing; the result is readable by all (0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        Path(tmp).write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def rows_to_csv(rows: list[dict]) -> str:
    """Rows of equal keys as CSV text (header from the first row); empty text for no rows."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Named arrays as the bytes of a compressed .npz file (for a download or an export)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


#: The only globals a pickle of plain containers and numpy arrays needs.
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused: the pickle asks for {module}.{name}; only plain numpy arrays are accepted")
        return super().find_class(module, name)


def load_arrays_pickle(file: BinaryIO, encoding: str = "ASCII"):
    """Unpickle a file of plain containers (dict, list, tuple, bytes, numbers) and numpy arrays.
    Any other global is refused with ``pickle.UnpicklingError`` before anything runs. ``encoding``
    decodes Python 2 strings ("bytes" keeps them as bytes, "latin1" for numpy arrays)."""
    return _ArraysOnlyUnpickler(file, encoding=encoding).load()
