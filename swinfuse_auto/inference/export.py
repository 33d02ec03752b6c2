"""Class probabilities in network space back onto the raw image grid, in bounded memory.

:func:`swinfuse_auto.preprocessing.invert.probabilities_to_raw` materialises all K channels at
the raw size, which for a 512 x 512 x 600 CT with 8 classes is 5 GB before the arg-max. Here the
same interpolation (linear, nearest-exact along the anisotropic axis, ``align_corners=False``:
the inverse of preprocessing) is done separably, one slab of output slices at a time, in float32
on whatever device holds the probabilities (the GPU after GPU inference). Only the slab and the
output are ever resident, so peak memory is the network-space probabilities plus one label map,
whatever the class count. Trilinear interpolation is a product of three linear ones, so the
separable passes give what ``F.interpolate`` gives, up to float rounding.

Outside the crop-to-nonzero box the image was empty: the label there is background and the
background probability is 1, as in :mod:`swinfuse_auto.preprocessing.invert`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from swinfuse_auto.preprocessing.case import CaseProperties
from swinfuse_auto.preprocessing.resample import low_resolution_axis

#: Bytes of float32 output one slab may hold (all classes); a few such buffers exist at once.
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


def _apply_axis(volume: torch.Tensor, dim: int, axis_map: _AxisMap, offset: int = 0
                ) -> torch.Tensor:
    """Gather (and blend) along ``dim``; ``offset`` is the first input index ``volume`` holds."""
    low, high, weight = axis_map
    out = volume.index_select(dim, low - offset)
    if high is None or weight is None:
        return out
    shape = [1] * volume.ndim
    shape[dim] = -1
    return out.lerp_(volume.index_select(dim, high - offset), weight.view(shape))


def _axis_maps(in_shape: tuple[int, ...], out_shape: tuple[int, ...], separate_axis: int | None,
               device: torch.device) -> list[_AxisMap | None]:
    """One map per spatial axis; None where the size does not change (identity)."""
    return [None if i == o else _axis_map(o, i, axis != separate_axis, device)
            for axis, (i, o) in enumerate(zip(in_shape, out_shape))]


def iter_crop_slabs(probabilities: torch.Tensor, properties: CaseProperties,
                    target_spacing: tuple[float, float, float], slab_bytes: int = SLAB_BYTES
                    ) -> Iterator[tuple[slice, torch.Tensor]]:
    """Resample (K, z, y, x) probabilities to the crop box's shape, a slab of z-slices at a time.

    Yields:
        ``(z_slice, slab)``: the slab's slices in crop coordinates, and the (K, n, y, x) float32
        slab on the probabilities' device.
    """
    in_shape = tuple(probabilities.shape[1:])
    out_shape = properties.shape_after_crop
    separate = low_resolution_axis(properties.geometry.spacing_zyx, target_spacing)
    maps = _axis_maps(in_shape, out_shape, separate, probabilities.device)
    per_slice = probabilities.shape[0] * out_shape[1] * out_shape[2] * 4
    step = max(1, slab_bytes // max(per_slice, 1))
    for start in range(0, out_shape[0], step):
        stop = min(start + step, out_shape[0])
        z_map = maps[0]
        if z_map is None:
            slab, offset = probabilities[:, start:stop], start
        else:
            z_map = tuple(t[start:stop] if t is not None else None for t in z_map)  # type: ignore[assignment]
            used = [t for t in z_map[:2] if t is not None]
            offset = int(min(int(t.min()) for t in used))
            slab = probabilities[:, offset:max(int(t.max()) for t in used) + 1]
        for dim in (2, 3):
            if maps[dim - 1] is not None:
                slab = _apply_axis(slab, dim, maps[dim - 1])  # type: ignore[arg-type]
        if z_map is not None:
            slab = _apply_axis(slab, 1, z_map, offset)  # type: ignore[arg-type]
        yield slice(start, stop), slab.float()


def label_dtype(num_classes: int) -> np.dtype:
    """The smallest integer type that holds every label (uint8 for up to 256 classes)."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.int16)


def segmentation_to_raw(probabilities: torch.Tensor, properties: CaseProperties,
                        target_spacing: tuple[float, float, float],
                        slab_bytes: int = SLAB_BYTES) -> np.ndarray:
    """The arg-max label map (z, y, x) on the raw grid, background outside the crop box."""
    dtype = label_dtype(probabilities.shape[0])
    full = np.zeros(properties.geometry.shape_zyx, dtype=dtype)
    (z0, _), (y0, y1), (x0, x1) = properties.bbox
    for zs, slab in iter_crop_slabs(probabilities, properties, target_spacing, slab_bytes):
        labels = slab.argmax(0).cpu().numpy().astype(dtype, copy=False)
        full[z0 + zs.start:z0 + zs.stop, y0:y1, x0:x1] = labels
    return full


def fill_raw_probabilities(probabilities: torch.Tensor, properties: CaseProperties,
                           target_spacing: tuple[float, float, float], out: np.ndarray,
                           slab_bytes: int = SLAB_BYTES) -> np.ndarray:
    """Write (K, z, y, x) float32 probabilities on the raw grid into ``out`` (array or memmap).

    ``out`` is filled slab by slab, so a ``numpy.lib.format.open_memmap`` file receives the
    probabilities of a volume larger than RAM.
    """
    expected = (probabilities.shape[0], *properties.geometry.shape_zyx)
    if tuple(out.shape) != expected:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {expected}")
    (z0, z1), (y0, y1), (x0, x1) = properties.bbox
    for z in [*range(0, z0), *range(z1, expected[1])]:  # empty slices: pure background
        out[:, z] = 0.0
        out[0, z] = 1.0
    for zs, slab in iter_crop_slabs(probabilities, properties, target_spacing, slab_bytes):
        block = np.zeros((expected[0], zs.stop - zs.start, *expected[2:]), dtype=np.float32)
        block[0] = 1.0
        block[:, :, y0:y1, x0:x1] = slab.cpu().numpy()
        out[:, z0 + zs.start:z0 + zs.stop] = block
    return out
