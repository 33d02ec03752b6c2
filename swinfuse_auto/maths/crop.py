"""Crop to the non-zero region, and undo it.

Shared by fingerprinting (shape after crop), preprocessing and prediction (un-cropping), so the
three agree by construction. Holes are filled so that a dark organ inside the body (air in the
lungs on MR, for instance) is never cut away.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BBox = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def nonzero_mask(images: np.ndarray) -> np.ndarray:
    """Voxels where any channel is non-zero, with holes filled. ``images`` is (C, z, y, x)."""
    mask = np.any(images != 0, axis=0)
    return ndimage.binary_fill_holes(mask)


def bbox_of(mask: np.ndarray) -> BBox:
    """Half-open bounding box of a boolean mask; the whole volume when the mask is empty."""
    if not mask.any():
        return tuple((0, int(s)) for s in mask.shape)  # type: ignore[return-value]
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        box.append((int(present[0]), int(present[-1]) + 1))
    return tuple(box)  # type: ignore[return-value]


def crop(array: np.ndarray, box: BBox) -> np.ndarray:
    """Crop the last three axes of ``array`` to ``box``."""
    (z0, z1), (y0, y1), (x0, x1) = box
    return array[..., z0:z1, y0:y1, x0:x1]


def uncrop(array: np.ndarray, box: BBox, full_shape: tuple[int, int, int],
           fill: float = 0) -> np.ndarray:
    """Place a cropped array (..., z, y, x) back into a volume of ``full_shape``."""
    out = np.full(array.shape[:-3] + tuple(full_shape), fill, dtype=array.dtype)
    (z0, z1), (y0, y1), (x0, x1) = box
    out[..., z0:z1, y0:y1, x0:x1] = array
    return out
