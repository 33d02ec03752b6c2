"""Reference inverse of preprocessing: whole-volume resampling back, then un-cropping.

The inverse of :func:`swinfuse_auto.preprocessing.case.preprocess_arrays` done the plain way (all
classes at the raw size at once), which the tests hold the bounded-memory
:mod:`swinfuse_auto.inference.raw_grid` against. The output's geometry is the raw image's,
exactly, because the grid is restored from the stored properties instead of recomputed.
"""

from __future__ import annotations

import numpy as np

from swinfuse_auto.maths.crop import uncrop
from swinfuse_auto.maths.resample import low_resolution_axis, resample_image, resample_label
from swinfuse_auto.preprocessing.case import CaseProperties


def _separate_axis(properties: CaseProperties, target_spacing: tuple[float, float, float]
                   ) -> int | None:
    return low_resolution_axis(properties.geometry.spacing_zyx, target_spacing)


def label_to_raw(seg: np.ndarray, properties: CaseProperties,
                 target_spacing: tuple[float, float, float]) -> np.ndarray:
    """A resampled (z, y, x) label map back on the raw grid (background outside the crop)."""
    back = resample_label(seg, properties.shape_after_crop,
                          _separate_axis(properties, target_spacing))
    return uncrop(back, properties.bbox, properties.geometry.shape_zyx, fill=0)


def probabilities_to_raw(probabilities: np.ndarray, properties: CaseProperties,
                         target_spacing: tuple[float, float, float]) -> np.ndarray:
    """(K, z, y, x) class probabilities back on the raw grid; outside the crop is background."""
    back = resample_image(probabilities, properties.shape_after_crop,
                          _separate_axis(properties, target_spacing), order=1)
    full = uncrop(back, properties.bbox, properties.geometry.shape_zyx, fill=0)
    outside = np.ones(properties.geometry.shape_zyx, dtype=bool)
    (z0, z1), (y0, y1), (x0, x1) = properties.bbox
    outside[z0:z1, y0:y1, x0:x1] = False
    full[0][outside] = 1.0
    return full
