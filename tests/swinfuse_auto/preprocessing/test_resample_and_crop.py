from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from swinfuse_auto.maths.crop import bbox_of, crop, nonzero_mask, uncrop
from swinfuse_auto.maths.resample import (low_resolution_axis, resample_image, resample_label,
                                          shape_for_spacing)


def _blobs(shape: tuple[int, int, int]) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    label = np.zeros(shape, dtype=np.int16)
    label[(z**2 + y**2 + x**2) < 0.5] = 1
    label[((z - 0.3) ** 2 + (y + 0.4) ** 2 + x**2) < 0.08] = 2
    return label


def test_shape_for_spacing_keeps_the_physical_extent() -> None:
    assert shape_for_spacing((20, 100, 100), (3.0, 0.7, 0.7), (1.0, 1.0, 1.0)) == (60, 70, 70)


def test_thick_slices_get_a_separate_axis() -> None:
    assert low_resolution_axis((5.0, 0.7, 0.7), (5.0, 0.7, 0.7)) == 0
    assert low_resolution_axis((1.0, 1.0, 1.2), (1.0, 1.0, 1.0)) is None


@pytest.mark.parametrize("separate", [None, 0])
def test_label_round_trip_is_within_one_voxel(separate: int | None) -> None:
    label = _blobs((24, 40, 36))
    down = resample_label(label, (12, 30, 27), separate)
    back = resample_label(down, label.shape, separate)
    assert set(np.unique(back)) == {0, 1, 2}
    disagreement = np.mean(back != label)
    assert disagreement < 0.05
    # every voxel that changed class has a voxel of another class within one voxel
    edge = ndimage.maximum_filter(label, size=3) != ndimage.minimum_filter(label, size=3)
    assert np.all(edge[back != label])


def test_image_resampling_is_float32_and_preserves_constants() -> None:
    images = np.full((2, 10, 12, 14), 7.5, dtype=np.float32)
    out = resample_image(images, (20, 6, 7))
    assert out.dtype == np.float32 and out.shape == (2, 20, 6, 7)
    np.testing.assert_allclose(out, 7.5, rtol=1e-6)


def test_crop_and_uncrop_are_inverse_on_the_box() -> None:
    images = np.zeros((1, 10, 10, 10), dtype=np.float32)
    images[0, 2:7, 3:9, 3:8] = 1
    images[0, 4, 5, 5] = 0  # a hole inside is filled, not a reason to split the box
    mask = nonzero_mask(images)
    box = bbox_of(mask)
    assert box == ((2, 7), (3, 9), (3, 8))
    assert mask[4, 5, 5]
    restored = uncrop(crop(images, box), box, (10, 10, 10))
    np.testing.assert_array_equal(restored, images)
