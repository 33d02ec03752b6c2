"""Sliding-window prediction of a whole volume, in patch-sized windows or larger tiles.

The pieces are kept apart so each can be tested and reused: :func:`compute_window_starts` and
:func:`window_slices` place the windows (the sampler), :func:`gaussian_importance_map` weights a
window, :class:`WindowAggregator` accumulates and normalises, and :func:`sliding_window_predict`
only wires them together.

What is averaged: softmax **probabilities**, not logits. nnU-Net averages logits; MONAI averages
whatever the network returns. Probabilities are chosen because (a) the design averages the fold
models' softmax, and windows, mirrored passes and folds should all average the same quantity;
(b) a weighted mean of probabilities is again a distribution, so the result can be resampled
linearly, written as the optional probability output and argmax-ed without a further softmax;
(c) logits of differently calibrated models (or windows at the image border, which see padding)
have different scales, and a logit average lets the most over-confident one dominate.

Predictors return logits; the softmax is applied here, per window, in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import EllipsisType

import torch
import torch.nn.functional as F

from swinfuse_auto.errors import ConfigError, SwinfuseError
from swinfuse_auto.inference.tiling import (TileGrid, WindowSlices, axis_starts, tile_grid,
                                            tile_importance_map)

Predictor = Callable[[torch.Tensor], torch.Tensor]
"""Maps a window batch (N, C, pz, py, px) to logits (N, K, pz, py, px)."""


def _check_patch_size(patch_size: Sequence[int]) -> tuple[int, int, int]:
    if len(patch_size) != 3 or any(int(p) < 1 for p in patch_size):
        raise ConfigError(f"patch_size must be three positive voxel counts (z, y, x), got "
                          f"{tuple(patch_size)}; take it from the plan's configuration.")
    return tuple(int(p) for p in patch_size)  # type: ignore[return-value]


def compute_window_starts(image_shape: Sequence[int], patch_size: Sequence[int],
                          step_fraction: float = 0.5) -> list[list[int]]:
    """Start index of every window along each axis.

    Windows are evenly spaced from 0 to ``shape - patch`` with the fewest windows whose step does
    not exceed ``step_fraction * patch``, so neighbours overlap by at least ``1 - step_fraction``
    (nnU-Net's placement). An axis not larger than the patch gets a single window at 0; such an
    image must be padded (:func:`pad_to_at_least`) before windows are cut. Windows are tiles of
    the patch's size (:func:`swinfuse_auto.inference.tiling.axis_starts`).

    Raises:
        ConfigError: ``step_fraction`` outside (0, 1], or a malformed shape or patch size.
    """
    patch = _check_patch_size(patch_size)
    if len(image_shape) != 3:
        raise ConfigError(f"image_shape must be spatial (z, y, x), got {tuple(image_shape)}; "
                          "drop the channel axis.")
    return [axis_starts(size, p, p, step_fraction) for size, p in zip(image_shape, patch)]


def window_slices(image_shape: Sequence[int], patch_size: Sequence[int],
                  step_fraction: float = 0.5) -> list[WindowSlices]:
    """The sampler: one (z, y, x) slice triple per window, in raster order."""
    patch = _check_patch_size(patch_size)
    starts = compute_window_starts(image_shape, patch, step_fraction)
    return TileGrid(patch, tuple(tuple(s) for s in starts)).slices()  # type: ignore[arg-type]


def gaussian_importance_map(patch_size: Sequence[int], sigma_scale: float = 1 / 8,
                            device: torch.device | str | None = None,
                            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Per-voxel window weight: a separable Gaussian centred on the patch, maximum 1.

    Predictions near a window's border see less context and are less reliable, so they count
    less where windows overlap. ``sigma = patch * sigma_scale`` per axis (nnU-Net: 1/8). The
    centre is ``(p - 1) / 2`` so the map is exactly symmetric; the smallest values are raised to
    the smallest positive one so no voxel ever has zero total weight. It is the tile weight
    (:func:`~swinfuse_auto.inference.tiling.tile_importance_map`) of a patch-sized tile.

    Raises:
        ConfigError: ``sigma_scale`` not positive or a malformed patch size.
    """
    patch = _check_patch_size(patch_size)
    return tile_importance_map(patch, patch, sigma_scale, device, dtype)


def pad_to_at_least(volume: torch.Tensor, patch_size: Sequence[int]
                    ) -> tuple[torch.Tensor, tuple[EllipsisType | slice, ...]]:
    """Zero-pad the last three axes, centred, up to ``patch_size`` where they are smaller.

    Returns:
        The padded tensor and the slicer that cuts any (..., z, y, x) tensor on the padded grid
        (input or output, whatever the leading axes) back to the original extent.
    """
    patch = _check_patch_size(patch_size)
    spatial = volume.shape[-3:]
    before = [max(p - s, 0) // 2 for s, p in zip(spatial, patch)]
    after = [max(p - s, 0) - b for s, p, b in zip(spatial, patch, before)]
    slicer = (Ellipsis,) + tuple(slice(b, b + s) for b, s in zip(before, spatial))
    if not any(before) and not any(after):
        return volume, slicer
    pads = [n for axis in (2, 1, 0) for n in (before[axis], after[axis])]  # F.pad: last axis first
    return F.pad(volume, pads, mode="constant", value=0.0), slicer


class WindowAggregator:
    """The aggregator: Gaussian-weighted sum of window probabilities, then normalisation.

    The running sums are float32 on ``device``, which may differ from the compute device: CPU
    accumulation bounds GPU memory to one window batch for volumes whose (K, z, y, x) output
    does not fit on the GPU.

    Args:
        num_classes: K, channels of every window added.
        spatial_shape: (z, y, x) of the (padded) volume the windows were cut from.
        weight: (pz, py, px) per-voxel window weight (Gaussian or ones), on the compute device.
        device: where the sums live.

    Example:
        >>> agg = WindowAggregator(2, (8, 8, 8), torch.ones(4, 4, 4), "cpu")
        >>> agg.add(torch.full((1, 2, 4, 4, 4), 0.5), [(slice(0, 4),) * 3])
    """

    def __init__(self, num_classes: int, spatial_shape: Sequence[int], weight: torch.Tensor,
                 device: torch.device | str) -> None:
        self.num_classes = num_classes
        self.weight = weight.float()
        self.device = torch.device(device)
        self._output_weight = self.weight.to(self.device)
        self._sum: torch.Tensor | None = torch.zeros(
            (num_classes, *spatial_shape), dtype=torch.float32, device=self.device)
        self._weight_sum = torch.zeros(tuple(spatial_shape), dtype=torch.float32,
                                       device=self.device)

    def _sums(self) -> torch.Tensor:
        if self._sum is None:
            raise SwinfuseError("WindowAggregator.finalize() was already called; use a new "
                                "aggregator for each volume.")
        return self._sum

    def add(self, probabilities: torch.Tensor, slices: Sequence[WindowSlices]) -> None:
        """Accumulate a batch of window probabilities (N, K, pz, py, px) at ``slices``."""
        total = self._sums()
        weighted = (probabilities.float() * self.weight).to(self.device)
        for window, where in zip(weighted, slices):
            total[(slice(None), *where)] += window
            self._weight_sum[where] += self._output_weight

    def finalize(self) -> torch.Tensor:
        """The weighted mean (K, z, y, x), normalised in place to avoid a second full-size copy.

        Raises:
            SwinfuseError: when called twice (the sums are gone) or if a voxel got no window.
        """
        total = self._sums()
        if not bool((self._weight_sum > 0).all()):
            raise SwinfuseError("Some voxels were not covered by any window; the windows must "
                                "tile the whole volume (use window_slices on the padded shape).")
        self._sum = None
        return total.div_(self._weight_sum)


def _check_volume(volume: torch.Tensor, num_classes: int, window_batch_size: int) -> None:
    if volume.ndim != 4:
        raise ConfigError(f"volume must be 4D (C, z, y, x), but it is {volume.ndim}D with shape "
                          f"{tuple(volume.shape)}; add a channel axis with volume[None].")
    if num_classes < 1 or window_batch_size < 1:
        raise ConfigError(f"num_classes and window_batch_size must be >= 1, got {num_classes} "
                          f"and {window_batch_size}.")


def _check_logits(logits: torch.Tensor, batch: torch.Tensor, num_classes: int) -> None:
    expected = (batch.shape[0], num_classes, *batch.shape[2:])
    if tuple(logits.shape) != expected:
        raise ConfigError(f"The predictor returned shape {tuple(logits.shape)} for windows of "
                          f"shape {tuple(batch.shape)}; expected {expected}. The network's "
                          "number of classes or output size does not match num_classes/patch_size.")


def sliding_window_predict(volume: torch.Tensor, predictor: Predictor,
                           patch_size: Sequence[int], num_classes: int,
                           step_fraction: float = 0.5, window_batch_size: int = 1,
                           use_gaussian: bool = True,
                           device: torch.device | str | None = None,
                           output_device: torch.device | str | None = None,
                           progress: Callable[[int, int], None] | None = None,
                           tile_size: Sequence[int] | None = None) -> torch.Tensor:
    """Class probabilities (K, z, y, x) of a whole volume, predicted window by window.

    The volume is padded (centred, zeros) where it is smaller than the patch, cut into windows
    with ``step_fraction`` overlap, predicted ``window_batch_size`` windows at a time, softmax-ed
    in float32, Gaussian-weighted, averaged and cropped back. The predictor is called under
    ``torch.no_grad()``; put the network in eval mode (and autocast) around this call.

    Windows may be larger than the patch (``tile_size``, from
    :func:`~swinfuse_auto.inference.tiling.plan_tiles`): neighbours then overlap by the
    window overlap in voxels and weights fall off only near tile borders (see
    :mod:`swinfuse_auto.inference.tiling`).

    Args:
        volume: (C, z, y, x) preprocessed image, on any device.
        predictor: window batch (N, C, pz, py, px) -> logits (N, K, pz, py, px); wrap it with
            :func:`swinfuse_auto.inference.tta.mirrored_predictor` for mirroring.
        patch_size: the network's training input size (z, y, x).
        num_classes: K.
        step_fraction: window step as a fraction of the patch (0.5 = 50% overlap).
        window_batch_size: windows per predictor call.
        use_gaussian: Gaussian importance weighting; uniform weights when False.
        device: compute device for the windows and the Gaussian; default: ``volume.device``.
        output_device: where the (K, z, y, x) sums live; default: ``device``. Pass "cpu" for
            volumes whose output does not fit in GPU memory.
        progress: called as ``progress(windows_done, windows_total)`` after each batch (the CLI
            hooks a progress bar here, keeping tqdm out of library code).
        tile_size: the window (tile) shape, at least the patch and inside the padded volume;
            default: the patch.

    Returns:
        float32 probabilities on ``output_device``, summing to 1 over K at every voxel.

    Raises:
        ConfigError: malformed inputs, or a predictor output of the wrong shape.
    """
    _check_volume(volume, num_classes, window_batch_size)
    patch = _check_patch_size(patch_size)
    device = torch.device(device) if device is not None else volume.device
    output_device = torch.device(output_device) if output_device is not None else device
    padded, unpad = pad_to_at_least(volume, patch)
    grid = tile_grid(padded.shape[1:], tile_size if tile_size is not None else patch, patch,
                     step_fraction)
    weight = (tile_importance_map(grid.tile, patch, device=device) if use_gaussian
              else torch.ones(grid.tile, dtype=torch.float32, device=device))
    aggregator = WindowAggregator(num_classes, padded.shape[1:], weight, output_device)
    with torch.no_grad():
        _add_windows(padded, predictor, grid.slices(), aggregator, window_batch_size, device,
                     progress)
        return aggregator.finalize()[unpad]


def _add_windows(padded: torch.Tensor, predictor: Predictor, slices: Sequence[WindowSlices],
                 aggregator: WindowAggregator, window_batch_size: int, device: torch.device,
                 progress: Callable[[int, int], None] | None) -> None:
    """Predict the windows batch by batch into ``aggregator``.

    Each batch's logits and probabilities are dropped before the next batch is cut, so a large
    tile's activations are freed (and their memory reused) rather than held twice.
    """
    num_classes = aggregator.num_classes
    for first in range(0, len(slices), window_batch_size):
        chunk = slices[first:first + window_batch_size]
        batch = torch.stack([padded[(slice(None), *where)] for where in chunk]).to(device)
        logits = predictor(batch)
        _check_logits(logits, batch, num_classes)
        probabilities = torch.softmax(logits.float(), dim=1)
        del logits, batch
        aggregator.add(probabilities, chunk)
        del probabilities
        if progress is not None:
            progress(first + len(chunk), len(slices))
