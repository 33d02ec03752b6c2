"""Mirroring test-time augmentation: predict every flip of the input and average the probabilities.

Training mirrors each axis at random, so the network should be (nearly) flip-equivariant and the
average over flips removes part of its residual, direction-dependent error. Like the sliding
window, the average is over softmax probabilities (see
:mod:`swinfuse_auto.inference.sliding_window` for why), never over logits.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.inference.sliding_window import Predictor

SPATIAL_AXES = (0, 1, 2)


def mirror_axes_combinations(axes: Sequence[int] = SPATIAL_AXES) -> list[tuple[int, ...]]:
    """Every subset of ``axes`` to flip, the identity ``()`` first: 2**len(axes) passes.

    Axes are spatial (0 = z, 1 = y, 2 = x), not tensor dimensions.

    Raises:
        ConfigError: an axis outside 0..2 or given twice.
    """
    axes = tuple(int(a) for a in axes)
    if any(a not in SPATIAL_AXES for a in axes) or len(set(axes)) != len(axes):
        raise ConfigError(f"mirror axes must be distinct spatial axes among {SPATIAL_AXES} "
                          f"(0 = z, 1 = y, 2 = x), got {axes}.")
    return [combo for size in range(len(axes) + 1)
            for combo in itertools.combinations(axes, size)]


def predict_with_mirroring(predictor: Predictor, batch: torch.Tensor,
                           axes: Sequence[int] = SPATIAL_AXES) -> torch.Tensor:
    """Mean softmax probabilities (N, K, z, y, x) over all flips of ``batch`` along ``axes``.

    Each pass flips the input, predicts, and flips the softmax back, so every pass is aligned
    with the unflipped input. The sum is kept running to hold one extra output in memory, not
    eight.

    Args:
        predictor: (N, C, z, y, x) -> logits (N, K, z, y, x).
        batch: (N, C, z, y, x) input.
        axes: spatial axes to mirror; ``()`` gives a single plain pass.

    Raises:
        ConfigError: ``batch`` not 5D or invalid axes.
    """
    if batch.ndim != 5:
        raise ConfigError(f"batch must be 5D (N, C, z, y, x), but it is {batch.ndim}D with "
                          f"shape {tuple(batch.shape)}.")
    combos = mirror_axes_combinations(axes)
    total = torch.zeros((), dtype=torch.float32, device=batch.device)
    for combo in combos:
        dims = [axis + 2 for axis in combo]
        logits = predictor(torch.flip(batch, dims) if dims else batch)
        probabilities = torch.softmax(logits.float(), dim=1)
        total = total + (torch.flip(probabilities, dims) if dims else probabilities)
    return total / len(combos)


def mirrored_predictor(predictor: Predictor, axes: Sequence[int] = SPATIAL_AXES) -> Predictor:
    """Wrap ``predictor`` so :func:`sliding_window_predict` gets mirroring per window batch.

    The wrapper returns ``log(mean probabilities)``: log-probabilities are valid logits, and the
    softmax the sliding window applies gives back the mean probabilities (they sum to 1; equal
    up to float rounding), so one predictor contract (logits) holds everywhere. Probabilities
    are floored at the smallest normal float32 so the log stays finite.

    Example:
        >>> probs = sliding_window_predict(image, mirrored_predictor(net), (64, 64, 64), 3)
    """
    mirror_axes_combinations(axes)  # validate now, not at the first window
    floor = torch.finfo(torch.float32).tiny

    def predict(batch: torch.Tensor) -> torch.Tensor:
        return torch.log(predict_with_mirroring(predictor, batch, axes).clamp_min(floor))

    return predict
