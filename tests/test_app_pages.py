"""One Streamlit AppTest per page, driving its main interaction on MNIST and CIFAR-10."""

from __future__ import annotations

import io
import math
import sys

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from interp_core import paths

ROOT = paths.PROJECT_ROOT
sys.path.insert(0, str(ROOT))  # the app imports pages.common, as `streamlit run app.py` allows
TIMEOUT = 120


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def numbers(table) -> list[float]:
    frame = table.value
    return [float(v) for col in frame.columns if col not in ("model", "explainer") for v in frame[col]]


def test_home_lists_what_is_available():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "MNIST" in text and "CIFAR-10" in text and "device" in text
    assert len(at.table[0].value) >= 1  # the model list


def test_about_defines_every_measure():
    at = open_page("about")
    from interp_core.explore import METRIC_DEFINITIONS

    shown = set(at.table[0].value["measure"])
    assert shown == set(METRIC_DEFINITIONS)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_explore_runs_an_attack(dataset):
    at = open_page("explore")
    at.radio(key="explore_dataset").set_value(dataset).run()
    at.multiselect(key="explore_explainers").set_value(["cam", "saliency"]).run()
    at.button(key="explore_random").click().run()
    at.button(key="explore_run").click().run()
    assert not at.exception, at.exception
    table = at.table[0].value
    assert list(table["explainer"]) == ["CAM", "Saliency"]
    assert all(math.isfinite(v) for v in numbers(at.table[0]))
    assert any("bound ½(Z_y − Z_t)" in m.value for m in at.markdown)
    assert at.slider(key="explore_step").value == at.slider(key="explore_step").max  # trajectory, last step
    at.slider(key="explore_step").set_value(0).run()
    assert not at.exception, at.exception
    assert len(at.get("download_button")) == 4


def test_explore_rejects_bad_uploads_and_keeps_working():
    at = open_page("explore")
    at.file_uploader(key="explore_ckpt").set_value(("evil.safetensors", b"\x00" * 64 + b"not json", "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert any("Checkpoint not used" in e.value for e in at.sidebar.error)
    at.radio(key="explore_source").set_value("upload").run()
    at.file_uploader(key="explore_image").set_value(("x.png", b"garbage", "image/png")).run()
    assert any("Image not used" in e.value for e in at.error)
    wrong = io.BytesIO()
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(wrong, format="PNG")
    at.file_uploader(key="explore_image").set_value(("x.png", wrong.getvalue(), "image/png")).run()
    assert any("30×40" in e.value for e in at.error)
    good = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(good, format="PNG")
    at.file_uploader(key="explore_image").set_value(("x.png", good.getvalue(), "image/png")).run()
    at.multiselect(key="explore_explainers").set_value(["cam"]).run()
    at.button(key="explore_run").click().run()
    assert not at.exception, at.exception
    assert len(at.table[0].value) == 1
