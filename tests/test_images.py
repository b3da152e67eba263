"""The image intake (interp_core.images.read_image): conversions with their notes, and one clear
error per kind of unusable file. Random and damaged files are in test_intake_fuzz.py."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from interp_core.images import MAX_PIXELS, ImageIntakeError, input_shape, read_image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A 4x4 PNG whose IHDR is rewritten (with its CRC) to claim width x height; no pixel of that
    size exists, so only a decoder that trusts the header would allocate it."""
    data = bytearray(encoded(Image.new("L", (4, 4)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_an_image_of_the_input_size_is_read_exactly_without_notes():
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    result = read_image(encoded(Image.fromarray(pixels), "PNG"), "mnist", name="digit.png")
    assert result.x.dtype == torch.float32 and result.x.shape == (1, 28, 28)
    assert torch.equal(result.x[0], torch.from_numpy(pixels.astype(np.float32) / 255))
    assert result.notes == () and result.format == "PNG" and result.original_mode == "L"
    assert result.original_size == (28, 28) and result.name == "digit.png"
    rgb = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    result = read_image(encoded(Image.fromarray(rgb), "BMP"), "cifar10")
    assert torch.equal(result.x, torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255))


def test_paths_file_objects_and_names(tmp_path):
    path = tmp_path / "cat.png"
    Image.new("RGB", (32, 32), (10, 20, 30)).save(path)
    assert read_image(path, "cifar10").name == str(path)
    assert read_image(str(path), "cifar10", name="cat").name == "cat"
    upload = io.BytesIO(path.read_bytes())
    upload.name = "upload.png"  # like Streamlit's UploadedFile
    result = read_image(upload, "cifar10")
    assert result.name == "upload.png" and result.x[:, 0, 0].mul(255).round().tolist() == [10, 20, 30]


def test_resize_and_colour_conversion_are_noted():
    result = read_image(encoded(Image.new("RGB", (40, 30), (255, 0, 0)), "PNG"), "mnist", name="x.png")
    assert result.x.shape == (1, 28, 28)
    assert result.notes == ("converted from mode RGB to grayscale",
                            "resized from 40×30 to 28×28 (aspect ratio not kept)")
    assert result.x.mean().item() == pytest.approx(76 / 255, abs=1 / 255)  # ITU-R 601-2 luma of red
    result = read_image(encoded(Image.new("L", (64, 64), 200), "PNG"), "cifar10")
    assert result.notes == ("converted from mode L to RGB", "resized from 64×64 to 32×32")
    assert torch.allclose(result.x, torch.full((3, 32, 32), 200 / 255))


@pytest.mark.parametrize("orientation,corner", [(6, "top"), (8, "bottom"), (3, "right")])
def test_exif_orientation_turns_the_image_upright(orientation, corner):
    image = Image.new("L", (40, 20), 0)
    image.paste(255, (0, 0, 10, 20))  # a white band along the left edge, as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = read_image(encoded(image, "PNG", exif=exif), (1, 40, 20) if orientation != 3 else (1, 20, 40))
    x = result.x[0]
    band = {"top": x[:10, :], "bottom": x[-10:, :], "right": x[:, -10:]}[corner]
    assert band.min() == 1.0 and x.mean().item() == pytest.approx(0.25)
    assert result.notes[0].startswith(f"EXIF orientation {orientation} applied: ")
    assert result.original_size == (40, 20)


def test_transparency_is_composited_on_black_for_mnist_and_white_for_cifar():
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 0] = 255  # red, in three alphas: transparent, half, opaque
    rgba[:, 10:20, 3] = 128
    rgba[:, 20:, 3] = 255
    data = encoded(Image.fromarray(rgba), "PNG")
    gray = read_image(data, "mnist").x[0]
    assert gray[:, :10].max() == 0.0  # transparent: the black background
    assert gray[0, 15].item() == pytest.approx(round(0.299 * 128) / 255, abs=1 / 255)
    assert gray[0, 25].item() == pytest.approx(76 / 255, abs=1 / 255)
    assert "transparent pixels composited on black" in read_image(data, "mnist").notes
    rgb = read_image(data, (3, 28, 28))
    assert rgb.x[:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # white background
    assert rgb.x[:, 0, 15].mul(255).round().tolist() == [255, 127, 127]
    assert rgb.x[:, 0, 25].tolist() == [1.0, 0.0, 0.0]
    assert rgb.notes[0] == "transparent pixels composited on white"
    opaque = read_image(encoded(Image.new("RGBA", (28, 28), (0, 0, 255, 255)), "PNG"), "mnist")
    assert not any("transparent" in n for n in opaque.notes)


def test_palette_transparency_and_one_bit_images():
    palette = Image.new("P", (28, 28), 1)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.paste(0, (0, 0, 14, 28))
    result = read_image(encoded(palette, "GIF", transparency=0), "cifar10")
    assert result.x[:, :, :14].min() == 1.0 and result.x[:, :, 14:].min() == 1.0  # transparent -> white
    assert read_image(encoded(palette, "GIF", transparency=0), "mnist").x[0, :, :14].max() == 0.0
    bits = Image.new("1", (28, 28), 0)
    bits.paste(1, (0, 0, 7, 28))
    result = read_image(encoded(bits, "BMP"), "mnist")
    assert result.x[0, :, :7].min() == 1.0 and result.x[0, :, 7:].max() == 0.0
    assert result.notes == ("converted from mode 1 to grayscale",)


def test_animated_gif_gives_its_first_frame_with_a_note():
    frames = [Image.new("RGB", (28, 28), (c, c, c)) for c in (200, 50, 100)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    result = read_image(data, "mnist", name="a.gif")
    assert result.notes[0] == "animated GIF with 3 frames: first frame used"
    assert torch.allclose(result.x, torch.full((1, 28, 28), 200 / 255), atol=1 / 255)
    pages = encoded(frames[1], "TIFF", save_all=True, append_images=frames[2:])
    result = read_image(pages, "mnist")
    assert result.notes[0] == "multi-page TIFF with 2 pages: first page used"
    assert torch.allclose(result.x, torch.full((1, 28, 28), 50 / 255), atol=1 / 255)


def test_sixteen_bit_images_are_stretched_by_their_range():
    values = np.linspace(1000, 5000, 28 * 28).reshape(28, 28).astype(np.uint16)
    result = read_image(encoded(Image.fromarray(values), "PNG"), "mnist")
    assert result.original_mode == "I;16"
    expected = (values.astype(np.float64) - 1000) / 4000
    assert np.allclose(result.x[0].numpy(), expected, atol=1e-6)
    assert result.notes == ("16-bit values 1000 to 5000 stretched to [0, 1]",)
    rgb = read_image(encoded(Image.fromarray(values), "TIFF"), "cifar10")
    assert rgb.x.shape == (3, 32, 32) and "converted from mode I;16 to RGB" in rgb.notes
    assert torch.equal(rgb.x[0], rgb.x[2])


def test_float_images_are_kept_in_unit_range_else_stretched_and_non_finite_values_replaced():
    inside = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    result = read_image(encoded(Image.fromarray(inside), "TIFF"), "mnist")
    assert result.original_mode == "F" and result.notes == ()
    assert np.allclose(result.x[0].numpy(), inside)
    wide = np.array([[-3.0, 5.0], [1.0, 1.0]], np.float32)
    result = read_image(encoded(Image.fromarray(wide), "TIFF"), (1, 2, 2))
    assert result.x[0].tolist() == [[0.0, 1.0], [0.5, 0.5]]
    assert result.notes == ("32-bit float values -3 to 5 stretched to [0, 1]",)
    odd = np.array([[np.nan, np.inf], [-np.inf, 0.25]], np.float32)
    result = read_image(encoded(Image.fromarray(odd), "TIFF"), (1, 2, 2))
    assert result.x[0].tolist() == [[0.0, 1.0], [0.0, 0.25]]
    assert result.notes == ("3 non-finite pixel values set to 0 (NaN, -inf) or 1 (+inf)",)
    flat = read_image(encoded(Image.fromarray(np.full((4, 4), 7, np.int32)), "TIFF"), (1, 4, 4))
    assert flat.original_mode == "I" and flat.x.max() == 0.0 and flat.notes[0].startswith("constant 32-bit image")


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_is_converted_to_rgb(fmt):
    result = read_image(encoded(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), fmt), "cifar10")
    assert result.original_mode == "CMYK" and "converted from mode CMYK to RGB without a colour profile" in result.notes
    assert torch.allclose(result.x[:, 16, 16], torch.tensor([1.0, 0.0, 0.0]), atol=3 / 255)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "GIF", "BMP", "TIFF", "PNG"])
def test_every_accepted_format_is_read(fmt):
    image = Image.new("RGB", (50, 20), (0, 0, 0))
    image.paste((255, 255, 255), (25, 0, 50, 20))
    x = read_image(encoded(image, fmt), "cifar10").x
    assert x[:, :, :12].max() < 0.1 and x[:, :, 20:].min() > 0.9


def test_unusable_files_raise_one_clear_error(tmp_path):
    good = encoded(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    cases = {
        b"": "empty file 'f.png'",
        b"plain text, not an image": "'f.png' is not an image PIL can read (PNG, JPEG, GIF, BMP, TIFF or WebP)",
        good[:len(good) - 30]: "'f.png' is truncated or damaged: its PNG data cannot be decoded",
        encoded(Image.new("RGB", (8, 8)), "PPM"): "'f.png' is not an image PIL can read",  # PIL reads it; we don't
        png_claiming(8000, 8000): "'f.png' is 8000×8000 pixels (64 megapixels); images of up to 40 megapixels",
        png_claiming(100_000, 100_000): "'f.png' is 10,000 megapixels; images of up to 40 megapixels",
    }
    for data, message in cases.items():
        with pytest.raises(ImageIntakeError) as err:
            read_image(data, "mnist", name="f.png")
        assert str(err.value).startswith(message) and "\n" not in str(err.value)
    with pytest.raises(ImageIntakeError, match="is 64×64 pixels"):
        read_image(good, "mnist", name="f.png", max_pixels=4000)
    with pytest.raises(ImageIntakeError, match=r"^cannot read '.*missing.png' \(No such file or directory\)$"):
        read_image(tmp_path / "missing.png", "mnist")
    with pytest.raises(ImageIntakeError, match="cannot read"):
        read_image(tmp_path, "mnist")
    assert isinstance(ImageIntakeError("x"), ValueError)


def test_bad_arguments_are_value_errors():
    assert input_shape("mnist") == (1, 28, 28) and input_shape("cifar10") == (3, 32, 32)
    assert input_shape((3, 224, 224)) == (3, 224, 224)
    data = encoded(Image.new("L", (4, 4)), "PNG")
    for target in ("svhn", (2, 28, 28), (1, 0, 28), (1, 28)):
        with pytest.raises(ValueError, match="unknown dataset|input shape"):
            read_image(data, target)
    with pytest.raises(ValueError, match="max_pixels must be in"):
        read_image(data, "mnist", max_pixels=0)
    with pytest.raises(ValueError, match="max_pixels must be in"):
        read_image(data, "mnist", max_pixels=Image.MAX_IMAGE_PIXELS + 1)
    with pytest.raises(TypeError, match="source must be"):
        read_image(12, "mnist")
    assert MAX_PIXELS == 40_000_000


def _ink_on_paper(width: int = 40, height: int = 30) -> bytes:
    """A dark vertical stroke on white, as a digit drawn with a pen and photographed."""
    pixels = np.full((height, width), 255, np.uint8)
    pixels[height // 4:3 * height // 4, width // 2 - 2:width // 2 + 2] = 0
    return encoded(Image.fromarray(pixels), "PNG")


def test_dark_on_light_digits_are_inverted_automatically_and_flagged_otherwise():
    plain = read_image(_ink_on_paper(28, 28), "mnist")
    assert plain.unlike.startswith("its border is not dark") and plain.x.mean() > 0.8
    auto = read_image(_ink_on_paper(28, 28), "mnist", invert="auto")
    assert "inverted (dark on light; MNIST digits are light on black)" in auto.notes and not auto.unlike
    assert torch.allclose(auto.x, 1 - plain.x)
    digit = torch.zeros(1, 28, 28)
    digit[0, 7:21, 12:16] = 1.0
    light_on_dark = encoded(Image.fromarray((digit[0].numpy() * 255).astype(np.uint8)), "PNG")
    kept = read_image(light_on_dark, "mnist", invert="auto")
    assert torch.equal(kept.x, digit) and not kept.notes and not kept.unlike  # already MNIST-like: untouched
    assert torch.allclose(read_image(light_on_dark, "mnist", invert=True).x, 1 - digit)
    with pytest.raises(ValueError, match="invert must be"):
        read_image(light_on_dark, "mnist", invert="sometimes")


@pytest.mark.parametrize("fit", ["crop", "pad"])
def test_crop_and_pad_keep_the_aspect_ratio(fit):
    """A 15x4 stroke in a 40x30 image: stretching to 28x28 changes its proportions; a centre crop
    or a pad on the image's own background keeps them."""
    stretched = read_image(_ink_on_paper(), "mnist", invert=True)
    fitted = read_image(_ink_on_paper(), "mnist", fit=fit, invert=True)
    assert "(aspect ratio not kept)" in stretched.notes[0]
    side = 30 if fit == "crop" else 40
    assert fitted.notes[0] == ("centre-cropped from 40×30 to 30×30" if fit == "crop"
                               else "padded from 40×30 to 40×40 with its background")
    assert f"resized from {side}×{side} to 28×28" in fitted.notes

    def proportions(result) -> float:  # width / height of the stroke, from its ink per row and per column
        ink = result.x[0]
        return float(ink.sum(1).max() / ink.sum(0).max())

    assert abs(proportions(fitted) - 4 / 15) < abs(proportions(stretched) - 4 / 15) / 2
    if fit == "pad":  # the border added is the image's own background (white, inverted to black)
        assert fitted.x[0, :3].max() < 0.05 and not fitted.unlike
    with pytest.raises(ValueError, match="fit must be one of"):
        read_image(_ink_on_paper(), "mnist", fit="squash")


def stroke_drawing(points, width: int = 22, size=(280, 280), background=(0, 0, 0, 255)) -> bytes:
    """A canvas-like RGBA PNG: one thick white stroke through ``points`` on ``background``."""
    from PIL import ImageDraw

    image = Image.new("RGBA", size, background)
    ImageDraw.Draw(image).line(points, fill=(255, 255, 255, 255), width=width, joint="curve")
    return encoded(image, "PNG")


def ink_box(x: np.ndarray) -> tuple[int, int]:
    """(height, width) of the bounding box of the pixels above INK_LEVEL of (H, W)."""
    from interp_core.images import INK_LEVEL

    rows, cols = np.flatnonzero((x > INK_LEVEL).any(1)), np.flatnonzero((x > INK_LEVEL).any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(x: np.ndarray) -> tuple[float, float]:
    return (float(np.arange(x.shape[0]) @ x.sum(1) / x.sum()), float(np.arange(x.shape[1]) @ x.sum(0) / x.sum()))


@pytest.mark.parametrize("background", [(0, 0, 0, 255), (255, 255, 255, 0)], ids=["black", "transparent"])
def test_a_drawn_stroke_is_prepared_as_mnist_prepares_its_digits(background):
    from interp_core.images import DIGIT_BOX, read_drawing

    # a "7" in the top-left corner of the canvas, taller than wide
    result = read_drawing(stroke_drawing([(30, 30), (130, 30), (70, 200)], background=background), name="canvas")
    x = result.x.numpy()
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    height, width = ink_box(x[0])
    assert height in (DIGIT_BOX, DIGIT_BOX + 1) and width < height  # the longer side fills the box, aspect kept
    cy, cx = centre_of_mass(x[0])
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5  # moved from the corner to the centre
    assert x[0].max() > 0.9 and (x[0] > 0.5).mean() < 0.5 and not result.unlike
    assert "centred by its centre of mass on 28×28" in result.notes[-1]
    assert ("transparent pixels composited on black" in result.notes) == (background[3] == 0)


def test_the_same_digit_drawn_anywhere_and_at_any_size_gives_one_input():
    from interp_core.images import read_drawing

    small = read_drawing(stroke_drawing([(20, 20), (60, 20), (35, 90)], width=10)).x
    large = read_drawing(stroke_drawing([(100, 60), (220, 60), (145, 270)], width=30, size=(300, 300))).x
    assert (small - large).abs().mean() < 0.05  # placement and scale are removed, only the shape stays


def test_an_empty_drawing_or_a_non_image_is_refused_clearly():
    from interp_core.images import centre_digit, read_drawing

    with pytest.raises(ImageIntakeError, match="'canvas' has no ink: draw a digit"):
        read_drawing(encoded(Image.new("RGBA", (280, 280), (0, 0, 0, 255)), "PNG"), name="canvas")
    with pytest.raises(ImageIntakeError, match="'canvas' is not an image"):
        read_drawing(b"not a png", name="canvas")
    with pytest.raises(ValueError, match=r"one grayscale image \(H, W\)"):
        centre_digit(np.zeros((1, 28, 28)))
