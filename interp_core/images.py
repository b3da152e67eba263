"""One intake for every image file the project reads: uploads, image folders and the image files of
datasets. ``read_image`` opens a PNG, JPEG, GIF, BMP, TIFF or WebP file and returns the model input
(C, H, W) float32 in [0, 1], with a note for each conversion it made.

In order:

1. empty, unreadable and non-image files are refused, and so is an image of more than
   ``max_pixels`` pixels, judged from its header before any pixel is decoded;
2. an animated or multi-page file gives its first frame;
3. the image is turned upright by its EXIF orientation tag;
4. transparent pixels are composited on the background of the input: black for 1-channel inputs
   (MNIST digits are white on black), white for 3-channel ones (the usual backdrop of cut-out
   photos);
5. the pixels are converted to grayscale (ITU-R 601-2 luma) or RGB; CMYK is converted without a
   colour profile. 16-bit and 32-bit images (modes I;16, I, F) are stretched linearly from their
   smallest to their largest value onto [0, 1]; a float image already within [0, 1] is kept as it
   is, a constant image becomes 0, and non-finite float pixels become 0 (NaN, -inf) or 1 (+inf);
6. ``fit``: a non-square image is fitted to the input's shape by ``"stretch"`` (the aspect ratio
   is not kept), ``"crop"`` (the largest centred box of the input's shape) or ``"pad"`` (centred
   on a border of the image's own background, its median edge pixel), then resized with a Lanczos
   filter;
7. ``invert`` (1-channel inputs): MNIST digits are light strokes on black. ``"auto"`` inverts an
   image whose border is mostly light (mean edge pixel above 0.5: ink on paper), ``True`` always,
   ``False`` never;
8. a 1-channel result that still looks unlike the dataset (a border that is not mostly dark, or
   ink on more than half of the pixels) gets ``unlike`` set to a sentence saying why.

``read_drawing`` reads a digit drawn light on dark (the Explore page's canvas) through steps 1 to 5
and then prepares it as MNIST prepared its digits (``centre_digit``: the ink's bounding box scaled
to fit 20×20, its centre of mass put on the centre of 28×28).

Every failure is an ``ImageIntakeError`` (a ValueError) whose message is one short sentence naming
the file. Notes are short lower-case phrases without a final full stop, e.g. ``"resized from 40×30
to 28×28 (aspect ratio not kept)"``; a page can join them with "; ".
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from interp_core.datasets import DATASETS
from PIL import ExifTags, Image, ImageOps

MAX_PIXELS = 40_000_000
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_ORIENTATION = {2: "mirrored", 3: "rotated 180°", 4: "flipped upside down", 5: "transposed",
                6: "rotated 90° clockwise", 7: "transversed", 8: "rotated 90° counter-clockwise"}


class ImageIntakeError(ValueError):
    """An image file that cannot be used; the message is one sentence naming the file."""


@dataclass(frozen=True)
class IntakeResult:
    """x: (C, H, W) float32 in [0, 1], the model input. original_size: (width, height) and
    original_mode: the PIL mode, as stored in the file; format: PIL's name of the file format
    ("PNG", "JPEG", ...). notes: one phrase per conversion made (empty when none was needed).
    unlike: why the result looks unlike the dataset's images (1-channel inputs), else ""."""

    x: torch.Tensor
    name: str
    format: str
    original_size: tuple[int, int]
    original_mode: str
    notes: tuple[str, ...]
    unlike: str = ""


def input_shape(dataset_or_shape: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """(C, H, W) of a dataset's model input ("mnist": (1, 28, 28), "cifar10": (3, 32, 32)), or a
    given (C, H, W) checked: C is 1 or 3, H and W are positive."""
    if isinstance(dataset_or_shape, str):
        if dataset_or_shape not in DATASETS:
            raise ValueError(f"unknown dataset {dataset_or_shape!r}; known: {sorted(DATASETS)}")
        channels, size = DATASETS[dataset_or_shape].channels, DATASETS[dataset_or_shape].size
        return channels, size, size
    shape = tuple(dataset_or_shape)
    if len(shape) != 3 or shape[0] not in (1, 3) or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"input shape must be (C, H, W) with C 1 or 3 and H, W positive, got {dataset_or_shape!r}")
    return shape


FITS = ("stretch", "crop", "pad")
#: A 1-channel input whose mean edge pixel is above this is light-backed (ink on paper).
LIGHT_BORDER = 0.5


def read_image(source: bytes | str | os.PathLike | BinaryIO, dataset_or_shape: str | tuple[int, int, int], *,
               name: str | None = None, max_pixels: int = MAX_PIXELS, fit: str = "stretch",
               invert: bool | str = False) -> IntakeResult:
    """An image file as the input of a dataset's models (``"mnist"``, ``"cifar10"``) or of a given
    (C, H, W) shape: x (C, H, W) float32 in [0, 1], with notes (see the module docstring).

    source: the file's bytes, a path, or a binary file object (e.g. an upload). name: how messages
    call the file (default: the path, or the file object's ``name``, else "image"). max_pixels:
    width × height above which the file is refused, at most PIL's own limit
    (``PIL.Image.MAX_IMAGE_PIXELS``). fit: one of ``FITS``; invert: True, False or "auto" (steps 6
    and 7 of the module docstring). Raises ImageIntakeError for any file that cannot be used.
    """
    channels, height, width = input_shape(dataset_or_shape)
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if invert not in (True, False, "auto"):
        raise ValueError(f"invert must be True, False or 'auto', got {invert!r}")
    ceiling = Image.MAX_IMAGE_PIXELS or max_pixels
    if not 1 <= max_pixels <= ceiling:
        raise ValueError(f"max_pixels must be in [1, {ceiling}], got {max_pixels}")
    data, name = _read_source(source, name)
    notes: list[str] = []
    with warnings.catch_warnings():  # PIL warns of damaged metadata and of large images: both are handled here
        warnings.simplefilter("ignore")
        image, fmt, size = _decode(data, name, max_pixels, notes)
    mode = image.mode
    image = _fitted(image, width, height, fit, notes)
    upright = image.size
    if mode in _DEEP_MODES:
        x = _resized_gray(_stretched(image, notes), width, height)
        x = np.repeat(x[None], channels, axis=0)
    else:
        image = _converted(image, name, channels, notes)
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        x = np.asarray(image, dtype=np.float32) / 255.0
        x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    if mode != ("L" if channels == 1 else "RGB") and not (channels == 1 and mode in _DEEP_MODES):
        notes.append(f"converted from mode {mode} to {'grayscale' if channels == 1 else 'RGB'}"
                     + (" without a colour profile" if mode == "CMYK" else ""))
    if upright != (width, height):
        w, h = upright
        notes.append(f"resized from {w}×{h} to {width}×{height}"
                     + ("" if w * height == h * width else " (aspect ratio not kept)"))
    unlike = ""
    if channels == 1:
        if invert is True or (invert == "auto" and _edge(x[0]).mean() > LIGHT_BORDER):
            x = 1.0 - x
            notes.append("inverted (dark on light; MNIST digits are light on black)")
        unlike = _unlike_mnist(x[0])
    return IntakeResult(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), name, fmt, size, mode,
                        tuple(notes), unlike)


def _edge(x: np.ndarray) -> np.ndarray:
    """The pixels on the border of a 2-D image (H, W), as one vector."""
    return np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])


def _unlike_mnist(x: np.ndarray) -> str:
    """Why a grayscale input (H, W) in [0, 1] looks unlike an MNIST digit, or ""."""
    if _edge(x).mean() > 0.3:
        return "its border is not dark: MNIST digits are light strokes on a black background"
    if (x > 0.5).mean() > 0.5:
        return "more than half of it is bright: an MNIST digit covers about a fifth of its square"
    return ""


def _fitted(image: Image.Image, width: int, height: int, fit: str, notes: list[str]) -> Image.Image:
    """``image`` brought to the aspect ratio width : height by ``fit`` (any PIL mode)."""
    w, h = image.size
    if fit == "stretch" or w * height == h * width:
        return image
    if fit == "crop":
        cw, ch = (h * width // height, h) if w * height > h * width else (w, w * height // width)
        left, top = (w - cw) // 2, (h - ch) // 2
        notes.append(f"centre-cropped from {w}×{h} to {cw}×{ch}")
        return image.crop((left, top, left + cw, top + ch))
    pw, ph = (w, -(-w * height // width)) if w * height > h * width else (-(-h * width // height), h)
    pixels = np.asarray(image)
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(edge, axis=0)
    as_pixel = float if image.mode == "F" else lambda v: int(round(float(v)))
    fill = tuple(as_pixel(v) for v in background) if edge.ndim == 2 else as_pixel(background)
    canvas = Image.new(image.mode, (pw, ph), fill)
    if image.mode == "P":  # the indices mean the image's own palette (and transparent index)
        canvas.putpalette(image.getpalette())
        canvas.info.update({k: v for k, v in image.info.items() if k == "transparency"})
    canvas.paste(image, ((pw - w) // 2, (ph - h) // 2))
    notes.append(f"padded from {w}×{h} to {pw}×{ph} with its background")
    return canvas


def _read_source(source, name: str | None) -> tuple[bytes, str]:
    """The bytes of a path, bytes-like or file object, and the name messages use for it."""
    if isinstance(source, (str, os.PathLike)):
        name = str(source) if name is None else name
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise ImageIntakeError(f"cannot read '{name}' ({err.strerror or type(err).__name__})") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        name = name or str(getattr(source, "name", "") or "")
        data = source.read()
    else:
        raise TypeError(f"source must be bytes, a path or a binary file object, not {type(source).__name__}")
    name = name or "image"
    if not data:
        raise ImageIntakeError(f"empty file '{name}'")
    return data, name


def _too_large(name: str, pixels: int | None, max_pixels: int, size: tuple[int, int] | None = None) -> ImageIntakeError:
    """The error for an image over the pixel budget; ``size`` (width, height) or ``pixels`` when known."""
    pixels = size[0] * size[1] if size else pixels
    what = f"{_megapixels(pixels)} megapixels" if pixels else "too large to decode safely"
    what = f"{size[0]}×{size[1]} pixels ({what})" if size else what
    return ImageIntakeError(f"'{name}' is {what}; images of up to {_megapixels(max_pixels)} megapixels are accepted")


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:,.0f}" if pixels >= 1e6 else f"{pixels / 1e6:.2g}"


def _decode(data: bytes, name: str, max_pixels: int, notes: list[str]) -> tuple[Image.Image, str, tuple[int, int]]:
    """The first frame of the file, decoded and upright, with its format and stored (width, height).

    The pixel budget is checked on the header's size before any pixel is decoded. PIL's own
    decompression-bomb check runs inside ``Image.open`` (it refuses more than twice
    ``Image.MAX_IMAGE_PIXELS``, which is above ``max_pixels``): its error gets the same message.
    Any exception PIL raises while decoding an untrusted file means the file is damaged.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        raise _too_large(name, int(found.group(1)) if found else None, max_pixels) from None
    except Image.UnidentifiedImageError:
        raise ImageIntakeError(f"'{name}' is not an image PIL can read (PNG, JPEG, GIF, BMP, TIFF or WebP)") from None
    except Exception:  # noqa: BLE001 - a header PIL recognized but could not parse
        raise ImageIntakeError(f"'{name}' is a damaged image file (its header cannot be read)") from None
    fmt, size = image.format or "image", image.size
    if size[0] < 1 or size[1] < 1:
        raise ImageIntakeError(f"'{name}' has no pixels ({size[0]}×{size[1]})")
    if size[0] * size[1] > max_pixels:
        raise _too_large(name, None, max_pixels, size)
    try:
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            image.seek(0)
            notes.append(f"{'multi-page' if fmt == 'TIFF' else 'animated'} {fmt} with {frames} "
                         f"{'pages' if fmt == 'TIFF' else 'frames'}: first {'page' if fmt == 'TIFF' else 'frame'} used")
        image.load()
        orientation = image.getexif().get(ExifTags.Base.Orientation)
        if orientation in _ORIENTATION:
            image = ImageOps.exif_transpose(image)
            notes.append(f"EXIF orientation {orientation} applied: {_ORIENTATION[orientation]}")
    except Image.DecompressionBombError:  # a frame larger than the header's size
        raise _too_large(name, None, max_pixels) from None
    except Exception:  # noqa: BLE001 - any decoder failure on an untrusted file
        raise ImageIntakeError(f"'{name}' is truncated or damaged: its {fmt} data cannot be decoded") from None
    return image, fmt, size


def _converted(image: Image.Image, name: str, channels: int, notes: list[str]) -> Image.Image:
    """An 8-bit image as mode L (channels 1) or RGB (channels 3), transparency composited on black
    (channels 1) or white (channels 3)."""
    mode, colour = image.mode, ("L" if channels == 1 else "RGB")
    try:
        if mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA") if mode not in ("La", "RGBa") else image.convert(mode.upper()).convert("RGBA")
            alpha = rgba.getchannel("A")
            if alpha.getextrema()[0] < 255:
                background = "black" if channels == 1 else "white"
                image = Image.new("RGB", rgba.size, background)
                image.paste(rgba, mask=alpha)
                notes.append(f"transparent pixels composited on {background}")
            else:
                image = rgba
        try:
            return image.convert(colour)
        except ValueError:  # e.g. LAB -> L: go through RGB
            return image.convert("RGB").convert(colour)
    except (ValueError, OSError):
        raise ImageIntakeError(f"'{name}' has pixel mode {mode}, which cannot be converted") from None


def _stretched(image: Image.Image, notes: list[str]) -> np.ndarray:
    """A 16-bit or 32-bit image (modes I;16, I, F) as (H, W) float64 in [0, 1]: stretched from its
    smallest to its largest finite value; a float image already within [0, 1] is kept; a constant
    image becomes 0; NaN and -inf become 0, +inf becomes 1."""
    a = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(a)
    bits = "32-bit float" if image.mode == "F" else ("32-bit" if image.mode == "I" else "16-bit")
    if finite.any():
        lo, hi = float(a.min(where=finite, initial=np.inf)), float(a.max(where=finite, initial=-np.inf))
    else:
        lo = hi = 0.0
    positive_inf = a == np.inf
    np.clip(a, lo, hi, out=a)
    if image.mode == "F" and 0.0 <= lo and hi <= 1.0:
        pass  # already in [0, 1]
    elif hi > lo:
        a -= lo
        a /= hi - lo
        notes.append(f"{bits} values {lo:g} to {hi:g} stretched to [0, 1]")
    else:
        a[:] = 0.0
        notes.append(f"constant {bits} image (every pixel {lo:g}) set to 0")
    bad = a.size - int(np.count_nonzero(finite))
    if bad:
        a[~finite] = 0.0
        a[positive_inf] = 1.0
        notes.append(f"{bad} non-finite pixel values set to 0 (NaN, -inf) or 1 (+inf)")
    return a


def _resized_gray(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) values in [0, 1] -> (height, width) float32 in [0, 1] (Lanczos, clipped)."""
    if gray.shape != (height, width):
        gray = np.asarray(Image.fromarray(gray.astype(np.float32)).resize((width, height), Image.Resampling.LANCZOS))
    return np.clip(gray, 0.0, 1.0).astype(np.float32)


#: MNIST's digits: the ink's bounding box scaled (aspect ratio kept) to fit a DIGIT_BOX-pixel square,
#: on a black square of DIGIT_SIZE pixels with the ink's centre of mass at its centre.
DIGIT_BOX, DIGIT_SIZE = 20, 28
#: A pixel brighter than this counts as ink for the bounding box.
INK_LEVEL = 0.1


def centre_digit(gray: np.ndarray, name: str = "drawing", size: int = DIGIT_SIZE, box: int = DIGIT_BOX) -> np.ndarray:
    """A light-on-dark digit (H, W) in [0, 1] prepared as MNIST prepares its digits: cropped to the
    bounding box of its ink (pixels above INK_LEVEL), resized (Lanczos, aspect ratio kept) so that
    its longer side is ``box`` pixels, and placed on a black ``size`` × ``size`` square with its
    centre of mass on the square's centre (to the nearest pixel; a lopsided digit is moved no
    further than keeps it whole). Returns (size, size) float32 in [0, 1]. Raises
    ImageIntakeError (naming ``name``) when there is no ink."""
    if gray.ndim != 2:
        raise ValueError(f"a digit is one grayscale image (H, W), got shape {gray.shape}")
    ink = gray > INK_LEVEL
    if not ink.any():
        raise ImageIntakeError(f"'{name}' has no ink: draw a digit (light strokes on the black square)")
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    height, width = crop.shape
    scale = box / max(height, width)
    digit = _resized_gray(crop, max(1, round(width * scale)), max(1, round(height * scale)))
    mass = float(digit.sum()) or 1.0
    centre_y = float(np.arange(digit.shape[0]) @ digit.sum(1)) / mass
    centre_x = float(np.arange(digit.shape[1]) @ digit.sum(0)) / mass
    top = int(np.clip(round((size - 1) / 2 - centre_y), 0, size - digit.shape[0]))
    left = int(np.clip(round((size - 1) / 2 - centre_x), 0, size - digit.shape[1]))
    out = np.zeros((size, size), dtype=np.float32)
    out[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return out


def read_drawing(source: bytes | str | os.PathLike | BinaryIO, *, name: str | None = None,
                 max_pixels: int = MAX_PIXELS) -> IntakeResult:
    """A digit drawn light on dark (e.g. a drawing canvas's PNG) as an MNIST input: x (1, 28, 28)
    float32 in [0, 1]. The file is read as ``read_image`` reads it (steps 1 to 5 of the module
    docstring, transparency on black, at its own size, 8-bit images only), then prepared by
    ``centre_digit``. Raises ImageIntakeError for a file that cannot be used or holds no ink."""
    data, name = _read_source(source, name)
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image, fmt, size = _decode(data, name, max_pixels, notes)
    if image.mode in _DEEP_MODES:
        raise ImageIntakeError(f"'{name}' is a {image.mode} image; a drawing is read from an 8-bit image")
    gray = np.asarray(_converted(image, name, 1, notes), dtype=np.float32) / 255.0
    x = centre_digit(gray, name)
    notes.append(f"cropped to the ink, scaled to fit {DIGIT_BOX}×{DIGIT_BOX} and centred by its centre of mass "
                 f"on {DIGIT_SIZE}×{DIGIT_SIZE}, as MNIST's digits")
    return IntakeResult(torch.from_numpy(x[None]), name, fmt, size, image.mode, tuple(notes), _unlike_mnist(x))
