"""Random crops of preprocessed cases: the one place that knows how to cut and pad a patch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def random_crop_start(shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator,
                      center: Sequence[int] | None = None) -> list[int]:
    """Start of a patch inside ``shape``; around ``center`` when given (foreground sampling).

    Axes shorter than the patch start at a negative offset so the crop is centred and padded.
    """
    starts = []
    for axis, (size, p) in enumerate(zip(shape, patch)):
        if size <= p:
            starts.append(-((p - size) // 2))
        elif center is not None:
            wanted = int(center[axis]) - p // 2 + int(rng.integers(-p // 4, p // 4 + 1))
            starts.append(int(np.clip(wanted, 0, size - p)))
        else:
            starts.append(int(rng.integers(0, size - p + 1)))
    return starts


def crop_padded(array: np.ndarray, start: Sequence[int], patch: Sequence[int],
                fill: float = 0) -> np.ndarray:
    """Copy ``array[..., start:start+patch]`` (last three axes), padding outside with ``fill``."""
    out = np.full(array.shape[:-3] + tuple(patch), fill, dtype=array.dtype)
    src, dst = [], []
    for s, p, size in zip(start, patch, array.shape[-3:]):
        lo, hi = max(s, 0), min(s + p, size)
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[(..., *dst)] = array[(..., *src)]
    return out
