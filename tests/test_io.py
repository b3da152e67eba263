"""interp_core.io: atomic writes, CSV text of rows, pickles of plain arrays only."""

from __future__ import annotations

import csv
import io
import os
import pickle

import numpy as np
import pytest

from interp_core.io import atomic_write, load_arrays_pickle, rows_to_csv, write_atomic


def test_atomic_write_replaces_the_file_in_one_step(tmp_path):
    path = tmp_path / "sub" / "file.bin"
    write_atomic(path, b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("crash mid-write")
    assert path.read_bytes() == b"old" and os.listdir(path.parent) == ["file.bin"]  # no temp file left
    write_atomic(path, "new text")
    assert path.read_text() == "new text" and oct(path.stat().st_mode & 0o777) == "0o644"


def test_rows_to_csv_round_trips():
    rows = [{"model": "a", "eps": 0.1, "ok": True}, {"model": "b,c", "eps": 0.3, "ok": False}]
    back = list(csv.DictReader(io.StringIO(rows_to_csv(rows))))
    assert back == [{"model": "a", "eps": "0.1", "ok": "True"}, {"model": "b,c", "eps": "0.3", "ok": "False"}]
    assert rows_to_csv([]) == ""


class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_array_pickles_load_and_anything_else_is_refused():
    arrays = {"layer0_kernel": np.arange(6.0).reshape(2, 3), "labels": [1, 2], "raw": b"x"}
    loaded = load_arrays_pickle(io.BytesIO(pickle.dumps(arrays)))
    np.testing.assert_array_equal(loaded["layer0_kernel"], arrays["layer0_kernel"])
    assert loaded["labels"] == [1, 2] and loaded["raw"] == b"x"
    with pytest.raises(pickle.UnpicklingError, match="refused: the pickle asks for posix.system"):
        load_arrays_pickle(io.BytesIO(pickle.dumps(_Hostile())))
