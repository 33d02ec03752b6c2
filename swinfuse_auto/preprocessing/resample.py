"""Resampling in float32 with torch: the step where nnU-Net spends most of its time and RAM.

nnU-Net resamples with float64 cubic splines per channel (17 s and many GB for one large CT);
trilinear interpolation in float32 through ``torch.nn.functional.interpolate`` does the same job
in about a second. Labels are resampled as one-hot probabilities one class at a time (linear),
keeping a running arg-max, so memory stays at two float32 volumes whatever the class count.

When one axis is much coarser than the others (thick slices), interpolating across slices blurs
structures that do not continue between them; as in nnU-Net, that axis is then resampled with
nearest neighbour and only the in-plane axes are interpolated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

Shape3D = tuple[int, int, int]

#: An axis whose spacing is this many times coarser than the finest is resampled separately.
ANISOTROPY_THRESHOLD = 3.0


def shape_for_spacing(shape: Sequence[int], spacing: Sequence[float],
                      target_spacing: Sequence[float]) -> Shape3D:
    """The voxel shape that covers the same extent at ``target_spacing``."""
    return tuple(max(1, int(round(s * sp / t)))  # type: ignore[return-value]
                 for s, sp, t in zip(shape, spacing, target_spacing))


def low_resolution_axis(spacing: Sequence[float], target_spacing: Sequence[float]) -> int | None:
    """The axis to resample with nearest neighbour, or None when the data are not that anisotropic."""
    for candidate in (spacing, target_spacing):
        ratio = max(candidate) / min(candidate)
        if ratio > ANISOTROPY_THRESHOLD:
            return int(np.argmax(candidate))
    return None


def _interpolate(volume: torch.Tensor, new_shape: Shape3D, separate_axis: int | None,
                 linear: bool) -> torch.Tensor:
    """Resample a (N, C, z, y, x) float tensor; ``separate_axis`` gets nearest neighbour."""
    if not linear:
        return F.interpolate(volume, size=new_shape, mode="nearest-exact")
    if separate_axis is None:
        return F.interpolate(volume, size=new_shape, mode="trilinear", align_corners=False)
    in_plane = list(volume.shape[2:])
    for axis in range(3):
        if axis != separate_axis:
            in_plane[axis] = new_shape[axis]
    volume = F.interpolate(volume, size=tuple(in_plane), mode="trilinear", align_corners=False)
    if volume.shape[2 + separate_axis] != new_shape[separate_axis]:
        volume = F.interpolate(volume, size=new_shape, mode="nearest-exact")
    return volume


def resample_image(images: np.ndarray, new_shape: Shape3D, separate_axis: int | None = None,
                   order: int = 1) -> np.ndarray:
    """Resample (C, z, y, x) images to ``new_shape``; order 1 (linear) or 0 (nearest)."""
    if tuple(images.shape[1:]) == tuple(new_shape):
        return images.astype(np.float32, copy=False)
    with torch.no_grad():
        tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[None]
        out = _interpolate(tensor, new_shape, separate_axis, linear=order > 0)
    return out[0].numpy()


def resample_label(label: np.ndarray, new_shape: Shape3D, separate_axis: int | None = None,
                   classes: Sequence[int] | None = None) -> np.ndarray:
    """Resample an integer (z, y, x) label map by linear interpolation of each class's mask.

    Negative values (ignore / outside-mask) are treated as one more class and survive.
    """
    if tuple(label.shape) == tuple(new_shape):
        return label
    values = sorted(int(v) for v in (classes if classes is not None else np.unique(label)))
    best_score = torch.full(new_shape, -1.0)
    best_value = torch.zeros(new_shape, dtype=torch.int16)
    source = torch.from_numpy(np.array(label, copy=True))  # writable, contiguous
    with torch.no_grad():
        for value in values:
            mask = (source == value).to(torch.float32)[None, None]
            score = _interpolate(mask, new_shape, separate_axis, linear=True)[0, 0]
            better = score > best_score
            best_score = torch.where(better, score, best_score)
            best_value[better] = value
    return best_value.numpy().astype(label.dtype, copy=False)
