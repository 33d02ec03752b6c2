"""Tiles for inference: fewer, larger pieces than the training patch, always inside the volume.

A Swin encoder with windowed attention and a convolutional decoder accept any input whose axes
are multiples of the encoder's divisor, so a volume need not be cut into training-sized windows
with 50% overlap (each voxel predicted about 8 times in 3D). :func:`plan_tiles` picks one tile
shape for the whole volume, the one that predicts the fewest voxels in all, within a memory
budget; at the budget of one patch it gives exactly the sliding-window placement.

The rules, each learnt from a measurement (README, "predict"):

* **Tiles lie inside the volume.** Along an axis longer than the patch a tile is at most the
  axis (rounded down to the divisor) and the last tile is shifted back, never padded beyond the
  volume: a whole-volume tile that padded a 45-slice volume to 64 slices with zeros dropped a
  kidney Dice from 0.84 to 0.19. Only an axis shorter than the patch is padded, to the patch, as
  the sliding window always did.
* **Tiles are at least the patch** along every axis: no voxel sees less context than in
  training.
* **Neighbouring tiles overlap by the sliding window's overlap in voxels**, ``(1 - step) *
  patch``, not by a fraction of the tile: what a voxel near a tile border misses is context on
  the scale of the patch.
* **Blending** (:func:`tile_importance_map`) keeps a tile's weight at 1 except within half a
  patch of its borders, where it falls off like the sliding window's Gaussian (sigma = patch / 8).
  For a patch-sized tile the map *is* that Gaussian, so windows are the special case.

**Not the default.** Larger tiles change the segmentation, not only the speed: the UNETR
decoder's instance norm takes its statistics over the whole input, so a tile normalises over
other content than the training patches did, and each voxel gets one prediction in a tile's core
instead of the Gaussian-weighted mean of about eight windows. On generated CT with two
briefly-trained networks the label maps of tiles and windows agreed with Dice 0.73 (liver) and
0.90 (spine), and against the ground truth tiles were better on the liver (0.72 against 0.55)
and worse on the spine (0.90 against 0.96) (README, "predict"). So ``predict`` uses windows
unless ``--tiling auto`` is given.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from swinfuse_auto.errors import ConfigError

Shape3D = tuple[int, int, int]
WindowSlices = tuple[slice, slice, slice]


def _shape3(values: Sequence[int], what: str) -> Shape3D:
    if len(values) != 3 or any(int(v) < 1 for v in values):
        raise ConfigError(f"{what} must be three positive voxel counts (z, y, x), got "
                          f"{tuple(values)}.")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def axis_starts(size: int, tile: int, patch: int, step_fraction: float = 0.5) -> list[int]:
    """Start of every tile along one axis: evenly spread from 0 to ``size - tile``.

    Neighbours overlap by at least ``(1 - step_fraction) * patch`` voxels: the fewest tiles
    whose step is at most ``tile - patch + step_fraction * patch``. With ``tile == patch`` this
    is nnU-Net's sliding-window placement (step at most ``step_fraction * patch``).

    Raises:
        ConfigError: ``step_fraction`` outside (0, 1] or a tile smaller than the patch.
    """
    if not 0 < step_fraction <= 1:
        raise ConfigError(f"step_fraction must be in (0, 1], got {step_fraction}; 0.5 means 50% "
                          "overlap between neighbouring windows.")
    if tile < patch:
        raise ConfigError(f"a tile ({tile}) must not be smaller than the patch ({patch}).")
    span = int(size) - tile
    if span <= 0:
        return [0]
    intervals = math.ceil(span / ((tile - patch) + patch * step_fraction))
    # i * span / intervals rounded half up, in integers so placement is exact.
    return [(2 * i * span + intervals) // (2 * intervals) for i in range(intervals + 1)]


@dataclass(frozen=True)
class TileGrid:
    """One tile shape and the start of every tile along each axis (raster order of slices)."""

    tile: Shape3D
    starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

    @property
    def count(self) -> int:
        return math.prod(len(s) for s in self.starts)

    @property
    def tile_voxels(self) -> int:
        return math.prod(self.tile)

    @property
    def total_voxels(self) -> int:
        """Voxels the network predicts for the whole volume (overlaps counted every time)."""
        return self.count * self.tile_voxels

    def slices(self) -> list[WindowSlices]:
        return [tuple(slice(s, s + t) for s, t in zip(corner, self.tile))  # type: ignore[misc]
                for corner in itertools.product(*self.starts)]


def tile_grid(shape: Sequence[int], tile: Sequence[int], patch: Sequence[int],
              step_fraction: float = 0.5) -> TileGrid:
    """The grid of ``tile``-shaped tiles over a volume already padded to at least the patch.

    Raises:
        ConfigError: a tile outside the volume or smaller than the patch along some axis.
    """
    shape3 = _shape3(shape, "the volume shape")
    tile3, patch3 = _shape3(tile, "tile_size"), _shape3(patch, "patch_size")
    for axis, (s, t, p) in enumerate(zip(shape3, tile3, patch3)):
        if t > max(s, p) or t < p:
            raise ConfigError(f"tile {tile3} does not fit the volume {shape3} along axis {axis}:"
                              f" a tile must lie inside the volume and be at least the patch "
                              f"{patch3}.")
    starts = tuple(tuple(axis_starts(s, t, p, step_fraction))
                   for s, t, p in zip(shape3, tile3, patch3))
    return TileGrid(tile3, starts)  # type: ignore[arg-type]


def _axis_options(size: int, patch: int, divisor: int, step_fraction: float
                  ) -> list[tuple[int, int]]:
    """(tile, tiles along the axis) for every allowed tile length."""
    if size <= patch:
        return [(patch, 1)]
    longest = max(patch, size // divisor * divisor)
    return [(t, len(axis_starts(size, t, patch, step_fraction)))
            for t in range(patch, longest + 1, divisor)]


def plan_tiles(shape: Sequence[int], patch: Sequence[int], divisor: int,
               max_tile_voxels: int | None = None, step_fraction: float = 0.5) -> TileGrid:
    """The tile shape that predicts the fewest voxels in all, within ``max_tile_voxels``.

    Every axis of a tile is a multiple of ``divisor`` (the encoder's input rule), at least the
    patch and at most the volume (see the module notes). Ties go to fewer tiles. With a budget
    below one patch, or none that allows more, the tiles are patch-sized windows.

    Args:
        shape: (z, y, x) of the volume, padded to at least the patch where it was smaller.
        patch: the training patch (z, y, x); each axis a multiple of ``divisor``.
        divisor: the encoder's input divisor.
        max_tile_voxels: the largest tile the memory allows (None: no limit).
        step_fraction: the sliding window's step; sets the overlap in voxels.

    Example:
        >>> plan_tiles((48, 512, 512), (32, 160, 160), 32).tile
        (32, 512, 512)
    """
    shape3, patch3 = _shape3(shape, "the volume shape"), _shape3(patch, "patch_size")
    if divisor < 1 or any(p % divisor for p in patch3):
        raise ConfigError(f"the patch {patch3} is not a multiple of the encoder divisor "
                          f"{divisor}; take both from one plan.")
    options = [_axis_options(s, p, divisor, step_fraction) for s, p in zip(shape3, patch3)]
    best: tuple[int, int, Shape3D] | None = None
    for combo in itertools.product(*options):
        tile = tuple(t for t, _ in combo)
        if max_tile_voxels is not None and math.prod(tile) > max_tile_voxels \
                and tile != patch3:
            continue
        count = math.prod(n for _, n in combo)
        key = (count * math.prod(tile), count, tile)
        if best is None or key < best:
            best = key  # type: ignore[assignment]
    assert best is not None  # the patch itself is always allowed
    return tile_grid(shape3, best[2], patch3, step_fraction)


def _axis_profile(tile: int, patch: int, sigma_scale: float,
                  device: torch.device | str | None) -> torch.Tensor:
    """1 inside the tile's core, a Gaussian fall-off within half a patch of each border."""
    index = torch.arange(tile, dtype=torch.float64, device=device)
    low, high = (patch - 1) / 2, tile - 1 - (patch - 1) / 2
    beyond = torch.clamp(torch.maximum(low - index, index - high), min=0.0)
    return torch.exp(-0.5 * (beyond / (patch * sigma_scale)) ** 2)


def tile_importance_map(tile: Sequence[int], patch: Sequence[int], sigma_scale: float = 1 / 8,
                        device: torch.device | str | None = None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Per-voxel weight of a tile: flat core, Gaussian borders, maximum 1, never 0.

    For ``tile == patch`` this is the sliding window's Gaussian (sigma = ``patch * sigma_scale``
    around the centre ``(p - 1) / 2``); a longer tile keeps weight 1 between the two half-patch
    borders. The smallest values are raised to the smallest positive one so no voxel ever has
    zero total weight.

    Raises:
        ConfigError: a tile smaller than the patch, or ``sigma_scale`` not positive.
    """
    tile3, patch3 = _shape3(tile, "tile_size"), _shape3(patch, "patch_size")
    if any(t < p for t, p in zip(tile3, patch3)):
        raise ConfigError(f"tile {tile3} is smaller than the patch {patch3} along some axis.")
    if not sigma_scale > 0:
        raise ConfigError(f"sigma_scale must be positive, got {sigma_scale}.")
    weight = torch.ones((), dtype=torch.float64, device=device)
    for t, p in zip(tile3, patch3):
        weight = weight.unsqueeze(-1) * _axis_profile(t, p, sigma_scale, device)
    weight = (weight / weight.max()).to(dtype)
    return torch.where(weight > 0, weight, weight[weight > 0].min())
