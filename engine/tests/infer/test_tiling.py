"""The tilers of 3D and 2D prediction (deepict.infer.tiling): cores cover every voxel, no more boxes than needed."""

from __future__ import annotations

import numpy as np
import pytest

from deepict.errors import ParameterError
from deepict.infer.tiling import box_starts, reflect_indices, window_starts


def covered(length: int, window: int, margin: int) -> np.ndarray:
    """How many box cores cover each real voxel."""
    count = np.zeros(length, int)
    for start in box_starts(length, window, margin):
        count[max(0, start):min(length, start + window - 2 * margin)] += 1
    return count


@pytest.mark.parametrize("length", [1, 2, 5, 7, 9, 15, 16, 17, 31, 37, 47, 48, 49, 61, 96, 130])
@pytest.mark.parametrize("window, margin", [(32, 4), (16, 4), (24, 0), (64, 12)])
def test_window_starts_cover_every_voxel(length, window, margin):
    starts = box_starts(length, window, margin)
    padded = max(length + 2 * margin, window)
    assert starts == sorted(set(starts)) and starts[0] == 0
    assert starts[-1] == padded - window  # the last box ends exactly at the end of the padded axis
    assert all(0 <= s <= padded - window for s in starts)
    assert (covered(length, window, margin) >= 1).all()
    step = window - 2 * margin
    assert len(starts) == max(1, -(-length // step))  # no more boxes than needed


@pytest.mark.parametrize("window, margin, multiple", [(32, 4, 1), (32, 4, 3), (16, 4, 5), (64, 12, 2)])
def test_window_starts_exact_multiples_tile_without_overlap(window, margin, multiple):
    step = window - 2 * margin
    length = multiple * step
    assert box_starts(length, window, margin) == [k * step for k in range(multiple)]
    assert (covered(length, window, margin) == 1).all()


def test_window_starts_smaller_than_box():
    assert box_starts(5, 32, 4) == [0]  # a single box; the rest is reflection
    assert box_starts(1, 16, 2) == [0]


def test_window_must_exceed_twice_the_margin():
    with pytest.raises(ParameterError, match="margin"):
        box_starts(10, 24, 12)


@pytest.mark.parametrize("length", [1, 5, 16, 17, 31, 32, 33, 47, 48, 49, 61, 96, 130, 256])
@pytest.mark.parametrize("window, margin", [(32, 4), (16, 4), (24, 0), (128, 12)])
def test_blended_windows_stay_inside_and_their_cores_join(length, window, margin):
    starts = window_starts(length, window, margin)
    assert starts == sorted(set(starts)) and starts[0] == 0
    assert starts[-1] == max(length - window, 0)  # inside, the last one ending at the last voxel
    core = window - 2 * margin
    for previous, start in zip(starts, starts[1:]):
        assert start - previous <= core  # each core begins where the previous one ends, or earlier
    assert len(starts) == 1 + max(0, -(-(length - window) // core))  # no more boxes than needed


def test_blended_windows_need_a_core():
    with pytest.raises(ParameterError, match="margin"):
        window_starts(100, 24, 12)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 10])
def test_reflect_indices_match_numpy_reflect(length):
    values = np.arange(length)
    for pad in range(0, 3 * length + 2):
        expected = np.pad(values, pad, mode="reflect") if length > 1 else np.zeros(length + 2 * pad, int)
        assert np.array_equal(values[reflect_indices(np.arange(-pad, length + pad), length)], expected), pad


def test_tile_starts_properties():
    for length in range(1, 700, 7):
        for tile, crop in ((64, 8), (288, 48), (32, 0)):
            core = tile - 2 * crop
            starts = box_starts(length, tile, crop)
            covered = np.zeros(length, bool)
            for s in starts:
                covered[s:s + core] = True
            assert covered.all()
            assert starts[0] == 0 and starts[-1] <= max(length - core, 0)
    with pytest.raises(ParameterError):
        box_starts(100, 32, 16)
