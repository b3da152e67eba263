"""interp_core.services.figures: round colour scales, overlays, shared scales and the framed thumbnail."""

from __future__ import annotations

import numpy as np
import pytest

from interp_core.services import figures


@pytest.mark.parametrize("value, nice", [(262.0, 500.0), (358.0, 500.0), (3.0, 5.0), (0.9, 1.0), (1.0, 1.0),
                                         (0.0013, 0.002), (0.021, 0.025), (0.0, 1.0), (float("nan"), 1.0)])
def test_nice_limit_rounds_up_to_a_round_number(value, nice):
    assert figures.nice_limit(value) == pytest.approx(nice)
    assert figures.nice_limit(-value) == pytest.approx(nice)


def test_overlay_keeps_the_image_where_the_map_is_zero_and_tints_where_it_is_strong():
    x = np.full((1, 4, 4), 0.5, dtype=np.float32)
    values = np.zeros((4, 4), dtype=np.float32)
    values[0, 0], values[3, 3] = 1.0, -1.0
    rgb = figures.overlay_rgb(x, values, 1.0)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    grey = round((0.5 * 0.6 + 0.2) * 255)
    assert (rgb[1, 1] == grey).all()  # untouched: grey
    assert rgb[0, 0, 2] > rgb[0, 0, 0] and rgb[3, 3, 0] > rgb[3, 3, 2]  # blue where positive, red where negative


def test_thumbnail_frames_the_chosen_image():
    x = np.zeros((1, 8, 8), dtype=np.float32)
    chosen, other = figures.thumbnail_image(x, True, 16), figures.thumbnail_image(x, False, 16)
    assert chosen.shape == other.shape == (24, 24, 3)
    assert tuple(chosen[0, 0]) == figures.SELECTED and tuple(other[0, 0]) == (255, 255, 255)


def test_a_thumbnail_strip_is_one_row_of_cells_with_only_the_chosen_one_framed():
    xs = [np.full((1, 8, 8), v, dtype=np.float32) for v in (0.0, 0.5, 1.0)]
    strip = figures.thumbnail_strip(xs, 1, 16)
    assert strip.shape == (24, 3 * 24, 3) and strip.dtype == np.uint8
    corners = [tuple(strip[0, 24 * i]) for i in range(3)]
    assert corners == [(255, 255, 255), figures.SELECTED, (255, 255, 255)]
    assert np.array_equal(strip[:, 48:], figures.thumbnail_image(xs[2], False, 16))


def test_panels_keep_type_readable_by_widening_columns():
    long = "a caption much wider than its small panel"
    img = figures.panels_image([("t", [(long, np.zeros((4, 4, 3), np.uint8))], None)], cell=20)
    assert img.shape[1] > figures._font(figures.FONT_PX - 2).getlength(long)
