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
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported on first use: the planning parent process never needs torch
    import torch

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
    import torch.nn.functional as F

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
    import torch

    with torch.no_grad():
        tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[None]
        out = _interpolate(tensor, new_shape, separate_axis, linear=order > 0)
    return out[0].numpy()


def resample_label(label: np.ndarray, new_shape: Shape3D, separate_axis: int | None = None,
                   classes: Sequence[int] | None = None, slab: int = 16) -> np.ndarray:
    """Resample an integer (z, y, x) label map by linear interpolation of each class's mask.

    Negative values (ignore / outside-mask) are treated as one more class and survive. With a
    separate (nearest-neighbour) axis every output slice along it comes from one input slice,
    so the work goes ``slab`` slices at a time: the same result, with temporaries of a slab
    instead of the volume (this is where a preprocessing worker's memory peaked).
    """
    if tuple(label.shape) == tuple(new_shape):
        return label
    import torch
    import torch.nn.functional as F

    values = sorted(int(v) for v in (classes if classes is not None else np.unique(label)))
    if separate_axis is None:
        source = torch.from_numpy(np.array(label, dtype=np.int16))[None]  # writable copy
        return _label_argmax(source, tuple(new_shape), values)[0].numpy().astype(label.dtype)
    moved = np.moveaxis(label, separate_axis, 0)
    out_shape = (new_shape[separate_axis],) + tuple(
        n for a, n in enumerate(new_shape) if a != separate_axis)
    count_in, count_out = moved.shape[0], out_shape[0]
    ramp = torch.arange(count_in, dtype=torch.float32)[None, None, :, None, None]
    rows = F.interpolate(ramp, size=(count_out, 1, 1), mode="nearest-exact").long().flatten()
    rows = rows.numpy()  # torch's own nearest-exact rows (float32), the ones resample_image takes
    out = np.empty(out_shape, dtype=np.int16)
    for start in range(0, count_out, slab):
        block = torch.from_numpy(np.array(moved[rows[start:start + slab]], dtype=np.int16))
        out[start:start + len(block)] = _label_argmax(block, out_shape[1:], values).numpy()
    return np.moveaxis(out, 0, separate_axis).astype(label.dtype)


def _label_argmax(block: torch.Tensor, shape: tuple[int, ...], values: list[int]
                  ) -> torch.Tensor:
    """Running arg-max over the classes' linearly interpolated masks, updated in place.

    ``block`` is (k, *in_shape): k volumes resampled trilinearly when ``shape`` is 3D, or k
    slices resampled bilinearly when it is 2D.
    """
    import torch
    import torch.nn.functional as F

    mode = "trilinear" if len(shape) == 3 else "bilinear"
    best_score = torch.full((block.shape[0], *shape), -1.0)
    best_value = torch.zeros((block.shape[0], *shape), dtype=torch.int16)
    with torch.no_grad():
        for value in values:
            mask = (block == value).to(torch.float32)[:, None]
            score = F.interpolate(mask, size=shape, mode=mode, align_corners=False)[:, 0]
            del mask
            better = score > best_score
            torch.maximum(best_score, score, out=best_score)
            best_value.masked_fill_(better, value)
    return best_value
