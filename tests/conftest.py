"""Shared fixtures. Tests run with one torch thread: the suite shares the 2-core machine with the
app server and training subprocesses that some tests start (see interp_core.runtime)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from interp_core import paths
from interp_core.runtime import configure_threads

configure_threads(shared=True)
# no start-up precompute of the lessons' views in the pages and app servers the tests start (a test
# that wants it sets the variable to 1; app_support/precompute.py)
os.environ.setdefault("INTERP_CORE_PRECOMPUTE", "0")


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu skip, saying why, where torch sees no CUDA device (``-m gpu`` on a CPU
    machine, or a marker expression that does not leave them out)."""
    if torch.cuda.is_available():
        return
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)"))


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


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright, one per test module (tests marked browser)."""
    if str(paths.PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(paths.PROJECT_ROOT))  # tools/ is the project's, not an installed package
    from tools import app_driver

    if not Path(app_driver.CHROMIUM).is_file():
        pytest.skip(f"needs Chromium at {app_driver.CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = app_driver.launch_browser(pw)
        yield chromium
        chromium.close()
