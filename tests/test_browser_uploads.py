"""Hostile and odd uploads on Explore in a real browser (one server for every case): each upload
class gets its message (refusals name the file and clear the previous results; conversions show
the intake's note), and the page still runs an attack afterwards. The server's log must hold no
traceback (app_driver.app_server checks it when the module's server stops).
"""

from __future__ import annotations

import io
import sys

import pytest
from PIL import Image

from interp_core import paths

sys.path.insert(0, str(paths.PROJECT_ROOT))
from tools import app_driver  # noqa: E402

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1400, "height": 1000}
RESULTS = "[data-testid='stCaptionContainer']:has-text('Results for:')"


def _png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def _exif_rotated() -> bytes:
    """A 28×28 JPEG whose EXIF orientation (6) says: turn 90° clockwise to view."""
    image = Image.new("L", (28, 28))
    image.paste(255, (12, 4, 16, 24))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def _animated_gif() -> bytes:
    frames = [Image.new("L", (28, 28), value) for value in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _wrong_shapes() -> bytes:
    """The shipped MNIST checkpoint with its card, one tensor a size too large."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save

    with safe_open(str(paths.PROJECT_ROOT / "checkpoints" / "mnist-smallgap-normal-paper.safetensors"), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    tensors["conv1.bias"] = torch.zeros(tensors["conv1.bias"].shape[0] + 1)
    return save(tensors, metadata=metadata)


#: case -> (uploader, file name, bytes, expected text, refused)
CASES = {
    "exif": ("image", "sideways.jpg", _exif_rotated, "EXIF orientation 6 applied: rotated 90° clockwise", False),
    "huge": ("image", "huge.png", lambda: _png(Image.new("1", (10_000, 10_000))),
             "'huge.png' is 10000×10000 pixels (100 megapixels)", True),
    "empty": ("image", "empty.png", lambda: b"", "empty file 'empty.png'", True),
    "text": ("image", "notes.png", lambda: b"a shopping list, not a picture\n", "'notes.png' is not an image", True),
    "rgba": ("image", "cutout.png", lambda: _png(Image.new("RGBA", (28, 28), (255, 255, 255, 0))),
             "transparent pixels composited on", False),
    "animated": ("image", "anim.gif", _animated_gif, "animated GIF with 3 frames: first frame used", False),
    "wrong_shapes": ("checkpoint", "wrong.safetensors", _wrong_shapes,
                     "Checkpoint wrong.safetensors not used: weights do not fit architecture 'smallgap': tensor "
                     "'conv1.bias' has shape (17,) in the file, (16,) in the architecture", True),
}
UPLOADERS = {"image": "Image (converted", "checkpoint": "upload a checkpoint"}


@pytest.fixture(scope="module")
def app_url():
    with app_driver.app_server() as url:
        yield url


def _wait_results(page, caption_start: str) -> None:
    page.wait_for_function(
        """(start) => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
               .some(c => c.innerText.startsWith('Results for: ' + start))
             && document.querySelector('[data-testid="stTable"] table')""", arg=caption_start, timeout=180_000)
    app_driver.wait_idle(page, started=True)


@pytest.mark.parametrize("case", list(CASES))
def test_upload_class(browser, app_url, tmp_path, case):
    uploader, name, make, expected, refused = CASES[case]
    page = browser.new_context(viewport=VIEWPORT).new_page()
    app_driver.open_explore(page, app_url)
    app_driver.run_attack(page)  # results of a gallery image, which a refused upload must clear
    assert page.locator(RESULTS).count() == 1
    if uploader == "image":
        page.get_by_text("upload an image", exact=True).click()
        app_driver.wait_idle(page)
    box = page.locator("[data-testid='stFileUploader']").filter(has_text=UPLOADERS[uploader])
    box.locator("input[type=file]").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": make()}])
    page.get_by_text(expected).first.wait_for(timeout=60_000)
    app_driver.wait_idle(page)
    page.screenshot(path=str(tmp_path / f"{case}.png"))
    text = page.locator("[data-testid='stApp']").inner_text()
    assert "UploadedFile" not in text and "Traceback" not in text
    assert not page.locator("[data-testid='stException']").count()
    if refused:
        shown = app_driver.errors(page)
        assert len(shown) == 1 and expected in shown[0] and name in shown[0], shown
        assert page.locator(RESULTS).count() == 0  # the previous image's results went with the error
        if uploader == "image":
            page.get_by_text("dataset gallery", exact=True).click()
            app_driver.wait_idle(page)
        app_driver.run_attack(page)  # the page still works
    else:
        assert not app_driver.errors(page)
        page.get_by_role("button", name="Run attack").click()
        _wait_results(page, "MNIST uploaded image")
    assert page.locator(RESULTS).count() == 1
    assert not page.locator("[data-testid='stException']").count()
