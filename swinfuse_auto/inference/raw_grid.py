"""Class probabilities in network space back onto the raw image grid, in bounded memory.

Resampling the whole volume back (``F.interpolate`` on all K channels, then un-cropping)
materialises every class at the raw size: for a 512 x 512 x 600 CT with 8 classes, 5 GB before
the arg-max. Here the same interpolation (linear, nearest-exact along the anisotropic axis,
``align_corners=False``: the inverse of preprocessing) is done in float32 on whatever device
holds the probabilities (the GPU after GPU inference), in two separable steps: in-plane
(bilinear ``F.interpolate``) on a bounded slab of input slices, then along z one output plane at
a time, each plane arg-maxed and copied out at once. Only a slab and the output are ever
resident, so peak memory is the network-space probabilities plus one label map, whatever the
class count, and the per-plane work runs on cache-sized arrays. Trilinear interpolation is a
product of linear ones, so this gives what ``F.interpolate`` gives on the whole volume, up to
float rounding.

Outside the crop-to-nonzero box the image was empty: the label there is background and the
background probability is 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from swinfuse_auto.maths.resample import low_resolution_axis
from swinfuse_auto.preprocessing.case import CaseProperties

#: Bytes of in-plane-resampled float32 planes (all classes) one slab may hold.
SLAB_BYTES = 64 * 1024**2

_AxisMap = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def _axis_map(out_size: int, in_size: int, linear: bool, device: torch.device) -> _AxisMap:
    """Source indices (low, high) and weights of one axis, as ``F.interpolate`` computes them.

    Linear: ``src = (i + 0.5) * in / out - 0.5`` clamped at 0 (``align_corners=False``).
    Nearest-exact: ``floor((i + 0.5) * in / out)``; ``high`` and the weights are None.
    """
    scale = in_size / out_size
    centres = torch.arange(out_size, device=device, dtype=torch.float64) + 0.5
    if not linear:
        return (centres * scale).floor().long().clamp_max(in_size - 1), None, None
    src = (centres * scale - 0.5).clamp_min(0)
    low = src.floor().long().clamp_max(in_size - 1)
    high = (low + 1).clamp_max(in_size - 1)
    return low, high, (src - low).float()


def _apply_axis(volume: torch.Tensor, dim: int, axis_map: _AxisMap) -> torch.Tensor:
    """Gather (and blend) ``volume`` along ``dim`` with an axis map."""
    low, high, weight = axis_map
    out = volume.index_select(dim, low)
    if high is None or weight is None:
        return out
    shape = [1] * volume.ndim
    shape[dim] = -1
    return out.lerp_(volume.index_select(dim, high), weight.view(shape))


def _axis_maps(in_shape: tuple[int, ...], out_shape: tuple[int, ...], separate_axis: int | None,
               device: torch.device) -> list[_AxisMap | None]:
    """One map per spatial axis; None where the size does not change (identity)."""
    return [None if i == o else _axis_map(o, i, axis != separate_axis, device)
            for axis, (i, o) in enumerate(zip(in_shape, out_shape))]


def _in_plane(slab: torch.Tensor, out_yx: tuple[int, int], maps: list[_AxisMap | None],
              separate_axis: int | None) -> torch.Tensor:
    """Resample (K, n, y, x) in-plane; bilinear through ``F.interpolate`` (fast, multi-threaded)
    unless y or x is the nearest-neighbour axis, which the separable gathers handle."""
    if tuple(slab.shape[2:]) == out_yx:
        return slab
    if separate_axis in (1, 2):
        for dim in (2, 3):
            axis_map = maps[dim - 1]
            if axis_map is not None:
                slab = _apply_axis(slab, dim, axis_map)
        return slab
    planes = F.interpolate(slab.transpose(0, 1), size=out_yx, mode="bilinear",
                           align_corners=False)
    return planes.transpose(0, 1)


def iter_crop_planes(probabilities: torch.Tensor, properties: CaseProperties,
                     target_spacing: tuple[float, float, float], slab_bytes: int = SLAB_BYTES
                     ) -> Iterator[tuple[int, torch.Tensor, int | None]]:
    """Resample (K, z, y, x) probabilities to the crop box's shape, one output z-plane at a time.

    Input slices are interpolated in-plane a bounded slab at a time (each slab only the input
    slices its outputs need, about half as many as it outputs when z is up-sampled); the planes
    are then blended (linear) or picked (nearest) along z one by one, so the per-plane work
    that follows (arg-max, copy out) runs on cache-sized arrays.

    Yields:
        ``(z, plane, source)``: the plane's index in crop coordinates, the (K, y, x) float32
        plane on the probabilities' device, and the input slice it is an unblended copy of
        (None when blended), so callers can reuse work for repeated slices.
    """
    out_shape = properties.shape_after_crop
    separate = low_resolution_axis(properties.geometry.spacing_zyx, target_spacing)
    maps = _axis_maps(tuple(probabilities.shape[1:]), out_shape, separate, probabilities.device)
    z_map = maps[0] or (torch.arange(out_shape[0]), None, None)
    low, high, weight = (t.tolist() if t is not None else None for t in z_map)
    per_slice = probabilities.shape[0] * out_shape[1] * out_shape[2] * 4
    step = max(1, slab_bytes // max(per_slice, 1))
    out_yx = (out_shape[1], out_shape[2])
    for start in range(0, out_shape[0], step):
        stop = min(start + step, out_shape[0])
        first = low[start]
        last = max((high or low)[start:stop])
        slab = _in_plane(probabilities[:, first:last + 1].float(), out_yx, maps, separate)
        for z in range(start, stop):
            below = slab[:, low[z] - first]
            if high is None or weight is None or high[z] == low[z] or weight[z] == 0.0:
                yield z, below, low[z]
            else:
                yield z, torch.lerp(below, slab[:, high[z] - first], weight[z]), None


def label_dtype(num_classes: int) -> np.dtype:
    """The smallest integer type that holds every label (uint8 for up to 256 classes)."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.int16)


def _argmax_classes(slab: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Arg-max over the class axis as a running maximum (first class wins ties, like argmax).

    ``Tensor.argmax(0)`` reduces over a leading axis about ten times slower on the CPU than this
    element-wise loop over the few classes.
    """
    best = slab[0].clone()
    labels = torch.zeros(best.shape, dtype=dtype, device=slab.device)
    for value in range(1, slab.shape[0]):
        better = slab[value] > best
        labels.masked_fill_(better, value)
        torch.maximum(best, slab[value], out=best)
    return labels


def segmentation_to_raw(probabilities: torch.Tensor, properties: CaseProperties,
                        target_spacing: tuple[float, float, float],
                        slab_bytes: int = SLAB_BYTES) -> np.ndarray:
    """The arg-max label map (z, y, x) on the raw grid, background outside the crop box."""
    dtype = label_dtype(probabilities.shape[0])
    torch_dtype = torch.uint8 if dtype == np.uint8 else torch.int16
    full = np.zeros(properties.geometry.shape_zyx, dtype=dtype)
    (z0, _), (y0, y1), (x0, x1) = properties.bbox
    previous: tuple[int | None, np.ndarray | None] = (None, None)
    for z, plane, source in iter_crop_planes(probabilities, properties, target_spacing,
                                             slab_bytes):
        if source is None or source != previous[0] or previous[1] is None:
            previous = (source, _argmax_classes(plane, torch_dtype).cpu().numpy())
        full[z0 + z, y0:y1, x0:x1] = previous[1]
    return full


def fill_raw_probabilities(probabilities: torch.Tensor, properties: CaseProperties,
                           target_spacing: tuple[float, float, float], out: np.ndarray,
                           slab_bytes: int = SLAB_BYTES) -> np.ndarray:
    """Write (K, z, y, x) float32 probabilities on the raw grid into ``out`` (array or memmap).

    ``out`` is filled plane by plane, so a ``numpy.lib.format.open_memmap`` file receives the
    probabilities of a volume larger than RAM.
    """
    expected = (probabilities.shape[0], *properties.geometry.shape_zyx)
    if tuple(out.shape) != expected:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {expected}")
    (z0, z1), (y0, y1), (x0, x1) = properties.bbox
    for z in [*range(0, z0), *range(z1, expected[1])]:  # empty slices: pure background
        out[:, z] = 0.0
        out[0, z] = 1.0
    for z, plane, _ in iter_crop_planes(probabilities, properties, target_spacing, slab_bytes):
        out[:, z0 + z] = 0.0
        out[0, z0 + z] = 1.0
        out[:, z0 + z, y0:y1, x0:x1] = plane.cpu().numpy()
    return out
