"""Fuzz tests of what the project reads from outside: image files (interp_core.images.read_image)
and checkpoints (interp_core.models.load_checkpoint).

Every generated or mutated file must end in a usable result (an image of the right shape, finite,
in [0, 1]; a model) or in the one defined error (ImageIntakeError; CheckpointError) with a
one-line message naming the file; no other exception, no hang (a hypothesis deadline and an alarm),
and headers that claim huge images are refused without allocating them (peak memory measured).

The default tests run a few hundred examples each, derandomized (the same examples every run, so
a failure is reproducible and CI is stable); the ``slow``-marked twins run thousands of random
ones (``pytest -m slow tests/test_intake_fuzz.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from interp_core.images import ImageIntakeError, read_image
from interp_core.models import CAMNet, CheckpointError, ModelCard, build_model, load_checkpoint, save_checkpoint

FAST = settings(max_examples=150, deadline=5000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=3000, deadline=5000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
# Modes each format can write (PIL converts the rest itself or refuses).
WRITABLE = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "GIF": ["L", "P", "RGB"],
    "BMP": ["1", "L", "P", "RGB"],
    "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"],
    "WEBP": ["RGB", "RGBA"],
}
ANIMATED = ("PNG", "GIF", "TIFF", "WEBP")


@contextlib.contextmanager
def alarm(seconds: int = 20):
    """Fail (instead of hanging the run) when one call takes longer than ``seconds``."""
    def stop(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_intake(data: bytes, dataset: str) -> bool:
    """The contract: a usable image or ImageIntakeError naming the file. True if it was usable."""
    try:
        with alarm():
            result = read_image(data, dataset, name="fuzz.img")
    except ImageIntakeError as err:
        message = str(err)
        assert "fuzz.img" in message and "\n" not in message and len(message) < 200, message
        return False
    x = result.x
    assert x.dtype == torch.float32 and tuple(x.shape) == SHAPES[dataset]
    assert torch.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
    assert all(isinstance(n, str) and "\n" not in n for n in result.notes)
    return True


def random_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(-2**31, 2**31 - 1, (height, width), dtype=np.int32))
    if mode == "F":
        values = rng.normal(0, 10.0 ** rng.integers(-3, 30), (height, width)).astype(np.float32)
        values[rng.random((height, width)) < 0.05] = rng.choice([np.nan, np.inf, -np.inf])
        return Image.fromarray(values)
    rgba = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    return rgba.convert(mode) if mode != "P" else rgba.convert("RGB").quantize(int(rng.integers(2, 256)))


@st.composite
def valid_files(draw) -> bytes:
    """A PNG, JPEG, GIF, BMP, TIFF or WebP file made by PIL: random small size, mode and pixels,
    sometimes animated, sometimes with an EXIF orientation."""
    fmt = draw(st.sampled_from(sorted(WRITABLE)))
    mode = draw(st.sampled_from(WRITABLE[fmt]))
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    frames = [random_image(mode, width, height, seed + i) for i in range(draw(st.integers(1, 3)) if fmt in ANIMATED else 1)]
    options = {}
    if len(frames) > 1:
        options.update(save_all=True, append_images=frames[1:])
    if fmt in ("PNG", "JPEG", "TIFF", "WEBP") and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 9))
        options["exif"] = exif
    if fmt in ("PNG", "GIF") and mode in ("P", "L") and len(frames) == 1 and draw(st.booleans()):
        options["transparency"] = draw(st.integers(0, 255))
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, **options)
    return buffer.getvalue()


@st.composite
def damaged_files(draw) -> bytes:
    """A valid file truncated, bit-flipped, overwritten with random bytes or cut and repeated."""
    data = bytearray(draw(valid_files()))
    how = draw(st.sampled_from(["truncate", "flip", "overwrite", "splice"]))
    if how == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    start = draw(st.integers(0, len(data) - 1))
    if how == "overwrite":
        patch = draw(st.binary(min_size=1, max_size=16))
        data[start:start + len(patch)] = patch
        return bytes(data)
    end = draw(st.integers(start, len(data)))
    return bytes(data[:end] + data[start:])


def _png_claiming(width: int, height: int) -> bytes:
    data = bytearray(_encoded(Image.new("L", (4, 4)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(_encoded(Image.new("L", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    descriptor = data.index(b"\x2c")  # image descriptor: x, y, width, height
    data[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def _bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(_encoded(Image.new("L", (4, 4)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(_encoded(Image.new("L", (8, 8)), "JPEG"))
    frame = data.index(b"\xff\xc0")  # SOF0: length, precision, height, width
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _tiff_claiming(width: int, height: int) -> bytes:
    """A little-endian TIFF of 8-bit gray with one strip of 16 bytes and a header of width x height."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8),
            (277, 3, 1), (278, 4, height), (279, 4, 16)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", t, k, 1, v) for t, k, v in tags) + b"\0" * 4
    return b"II*\0" + struct.pack("<I", 24) + b"\x80" * 16 + ifd


def _webp_claiming(width: int, height: int) -> bytes:
    """A WebP whose VP8X chunk claims a canvas of width x height around a 4x4 lossless image."""
    small = _encoded(Image.new("RGB", (4, 4)), "WEBP", lossless=True)[12:]  # the VP8L chunk
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + small
    return b"RIFF" + struct.pack("<I", len(body)) + body


CLAIMING = {"PNG": (_png_claiming, 2**31 - 1), "GIF": (_gif_claiming, 65535), "BMP": (_bmp_claiming, 2**31 - 1),
            "JPEG": (_jpeg_claiming, 65535), "TIFF": (_tiff_claiming, 2**32 - 1), "WEBP": (_webp_claiming, 2**24)}


@st.composite
def huge_headers(draw) -> tuple[str, bytes]:
    """A file of a few hundred bytes whose header claims more than 40 megapixels."""
    fmt = draw(st.sampled_from(sorted(CLAIMING)))
    make, largest = CLAIMING[fmt]
    width = draw(st.integers(7000, largest))
    height = draw(st.integers(-(-40_000_001 // width), largest))
    if draw(st.booleans()):
        width, height = height, width
    return fmt, make(width, height)


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _read(data, dataset):
    assert check_intake(data, dataset)


def _read_or_refused(data, dataset):
    check_intake(data, dataset)


def _twins(strategy, check):
    """The same property as a fast derandomized test and a slow random one."""
    fast = FAST(given(strategy, st.sampled_from(sorted(SHAPES)))(check))
    slow = pytest.mark.slow(SLOW(given(strategy, st.sampled_from(sorted(SHAPES)))(check)))
    return fast, slow


test_valid_files_are_read, test_valid_files_are_read_many = _twins(valid_files(), _read)
test_damaged_files_are_read_or_refused, test_damaged_files_are_read_or_refused_many = _twins(damaged_files(), _read_or_refused)
test_random_bytes_are_refused_or_read, test_random_bytes_are_refused_or_read_many = _twins(
    st.one_of(st.binary(max_size=64), st.binary(min_size=64, max_size=4096)), _read_or_refused)


def _peak_kb() -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _reset_peak() -> None:
    """Reset the process's peak resident memory (Linux: /proc/self/clear_refs), so that what one
    call allocates shows, whatever earlier tests used."""
    Path("/proc/self/clear_refs").write_text("5")


@contextlib.contextmanager
def peak_growth_below(mb: float):
    """Fail if the peak resident memory grows by ``mb`` or more inside the block."""
    _reset_peak()
    before = _peak_kb()
    yield
    growth = (_peak_kb() - before) / 1024
    assert growth < mb, f"peak memory grew by {growth:.0f} MB"


@pytest.fixture
def memory_meter():
    try:
        _reset_peak()
    except OSError as err:
        pytest.skip(f"cannot reset the peak memory of this process ({err})")


def test_the_memory_meter_sees_an_allocation(memory_meter):
    with pytest.raises(AssertionError, match="peak memory grew"):
        with peak_growth_below(16):
            np.ones(64 * 2**20 // 8)  # 64 MB, touched


@pytest.mark.parametrize("examples", [pytest.param(120, id="fast"), pytest.param(1500, id="many", marks=pytest.mark.slow)])
def test_huge_headers_are_refused_before_decoding(examples, memory_meter):
    formats = set()

    @settings(FAST, max_examples=examples, derandomize=examples < 1000)
    @given(huge_headers(), st.sampled_from(sorted(SHAPES)))
    def refused(case, dataset):
        fmt, data = case
        with pytest.raises(ImageIntakeError) as err, peak_growth_below(16), alarm():
            read_image(data, dataset, name="huge.img")
        message = str(err.value)
        # the size is refused from the header, or (libwebp, which checks the canvas against the
        # chunk sizes itself) the file is refused as damaged; never a decoded bomb
        assert "megapixels" in message or (fmt == "WEBP" and "damaged" in message), message
        formats.add(fmt)

    refused()
    assert formats == set(CLAIMING)


def test_a_claimed_size_within_the_budget_is_decoded_and_found_truncated():
    """The other side of the budget: 4000 x 3000 (12 megapixels) is allowed, so the missing pixel
    data is what refuses the file."""
    with pytest.raises(ImageIntakeError, match="truncated or damaged"):
        read_image(_png_claiming(4000, 3000), "mnist", name="x.png")


# ---------------------------------------------------------------------------------------------
# Checkpoints

@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    torch.manual_seed(0)
    card = ModelCard(name="fuzz", arch="smallgap", dataset="mnist", method="normal", in_channels=1, num_classes=10,
                     hyperparameters={"eps": 0.3}, metrics={"clean_accuracy": 0.5})
    path = save_checkpoint(build_model("smallgap", 1, 10), card, tmp_path_factory.mktemp("ckpt") / "base.safetensors")
    return path.read_bytes()


def _split(data: bytes) -> tuple[dict, bytes]:
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + length]), data[8 + length:]


def _join(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + body


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


@st.composite
def mutated_checkpoints(draw, base: bytes) -> bytes:
    """The base checkpoint with one mutation: flipped bytes in the header or the body, truncated,
    a wrong or huge header length, an edited card, edited tensor entries."""
    how = draw(st.sampled_from(["flip header", "flip body", "truncate", "length", "card", "tensors"]))
    data = bytearray(base)
    length = int.from_bytes(base[:8], "little")
    if how in ("flip header", "flip body"):
        lo, hi = (0, 8 + length) if how == "flip header" else (8 + length, len(data))
        for _ in range(draw(st.integers(1, 6))):
            data[draw(st.integers(lo, hi - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if how == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    if how == "length":
        value = draw(st.one_of(st.integers(0, 2**64 - 1), st.integers(length - 64, length + 64).filter(lambda v: v >= 0)))
        return value.to_bytes(8, "little") + bytes(data[8:])
    header, body = _split(base)
    if how == "card":
        card = json.loads(header["__metadata__"]["interp_core.card"])
        field = draw(st.sampled_from(sorted(card) + ["extra"]))
        action = draw(st.sampled_from(["set", "delete", "text"]))
        if action == "set":
            card[field] = draw(st.one_of(JSON_VALUES, st.sampled_from(["smallgap", "pool", "wresnet", "mnist", "cifar10"]),
                                         st.integers(0, 4)))
        elif action == "delete":
            card.pop(field, None)
        header["__metadata__"]["interp_core.card"] = (json.dumps(card) if action != "text"
                                                      else draw(st.text(max_size=50)))
        return _join(header, body)
    name = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    key = draw(st.sampled_from(["shape", "dtype", "data_offsets", "drop", "rename"]))
    if key == "drop":
        header.pop(name)
    elif key == "rename":
        header[name + "x"] = header.pop(name)
    elif key == "dtype":
        header[name]["dtype"] = draw(st.sampled_from(["F16", "BF16", "F64", "I64", "U8", "BOOL", "F32", "X"]))
    else:
        header[name][key] = draw(st.lists(st.integers(0, 2**40), max_size=5))
    return _join(header, body)


def _check_checkpoint(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        with alarm():
            model, card = load_checkpoint(path)
    except CheckpointError as err:
        message = str(err)
        assert message.startswith(str(path)) and "\n" not in message and "Error(s) in loading" not in message, message
        return
    assert isinstance(model, CAMNet) and card.arch == type(model).__name__.lower()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model(torch.rand(2, card.in_channels, 28, 28)).shape == (2, card.num_classes)


@pytest.mark.parametrize("examples", [pytest.param(250, id="fast"), pytest.param(3000, id="many", marks=pytest.mark.slow)])
def test_mutated_checkpoints_load_or_are_refused(examples, checkpoint_bytes, tmp_path, memory_meter):
    """The base file is 0.7 MB; no mutation may make loading it take much more memory."""
    path = tmp_path / "fuzz.safetensors"

    @settings(FAST, max_examples=examples, derandomize=examples < 1000)
    @given(mutated_checkpoints(checkpoint_bytes))
    def run(data):
        with peak_growth_below(32):
            _check_checkpoint(path, data)

    run()
