"""Shared fixtures. Tests run with one torch thread: the suite shares the 2-core machine with the
app server and training subprocesses that some tests start (see interp_core.runtime)."""

from __future__ import annotations

import pytest
import torch

from interp_core import paths
from interp_core.runtime import configure_threads

configure_threads(shared=True)


@pytest.fixture
def paper_networks_dir():
    """The authors' networks in ../shared; skips (saying why) where the shared folder is absent."""
    folder = paths.paper_networks_dir()
    if not any(folder.glob("*.npz")) if folder.is_dir() else True:
        pytest.skip(f"needs the paper networks in {folder} (the shared folder is not present)")
    return folder


@pytest.fixture
def full_data():
    """Skips (saying why) where the full datasets of ../shared/data are absent."""
    folder = paths.shared_dir() / "data"
    if not (folder / "MNIST" / "raw").is_dir():
        pytest.skip(f"needs the full datasets in {folder} (the shared folder is not present)")
    return folder


@pytest.fixture
def mnist_demo():
    from interp_core.data import load_dataset

    return load_dataset("mnist", "demo")


@pytest.fixture
def mnist_normal():
    """The shipped normally trained MNIST smallgap network (the authors' weights)."""
    from interp_core.models import load_model

    return load_model("mnist-smallgap-normal-paper")[0]


@pytest.fixture
def tiny_cifar_model():
    torch.manual_seed(0)
    from interp_core.models import build_model

    return build_model("smallgap", 3, 10).eval()
