from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.invert import probabilities_to_raw
from swinfuse_auto.inference.raw_grid import (fill_raw_probabilities, label_dtype,
                                              segmentation_to_raw)
from swinfuse_auto.io.image import Geometry
from swinfuse_auto.preprocessing.case import CaseProperties

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("spacing_xyz, target_zyx, network_shape", [
    ((0.9, 1.1, 2.3), (3.0, 1.5, 1.5), (20, 31, 28)),   # down-sampled, isotropic enough
    ((0.7, 0.7, 5.0), (5.0, 1.0, 1.0), (37, 25, 23)),   # thick slices: nearest along z
    ((0.8, 4.0, 1.0), (1.0, 1.0, 1.0), (37, 200, 36)),  # anisotropic y: nearest along y
])
def test_slab_wise_export_matches_whole_volume_inversion(
        spacing_xyz: tuple[float, float, float], target_zyx: tuple[float, float, float],
        network_shape: tuple[int, int, int]) -> None:
    """Same numbers as helpers/invert.py (F.interpolate on the whole volume), in slabs."""
    geometry = Geometry((45, 60, 50), spacing_xyz, (0.0, 0.0, 0.0), IDENTITY)
    properties = CaseProperties("x", geometry, ((3, 40), (5, 55), (2, 45)), network_shape,
                                ("CT",))
    logits = torch.randn((4, *network_shape), generator=torch.Generator().manual_seed(0))
    probabilities = torch.softmax(logits, 0)
    expected = probabilities_to_raw(probabilities.numpy(), properties, target_zyx)
    out = np.empty_like(expected)
    fill_raw_probabilities(probabilities, properties, target_zyx, out, slab_bytes=40_000)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    labels = segmentation_to_raw(probabilities, properties, target_zyx, slab_bytes=40_000)
    assert labels.dtype == np.uint8 and labels.shape == geometry.shape_zyx
    assert (labels == expected.argmax(0)).mean() > 0.999  # ties may round either way
    assert (labels[:3] == 0).all() and (labels[:, :, 45:] == 0).all()  # outside the crop


def test_label_dtype() -> None:
    assert label_dtype(3) == np.uint8 and label_dtype(300) == np.int16
