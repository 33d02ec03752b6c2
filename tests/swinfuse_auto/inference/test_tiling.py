"""Tile planning and the tile blending map: inside the volume, every voxel covered, at least the
patch, overlap in voxels, and exactly the sliding window at a budget of one patch."""

from __future__ import annotations

import math

import pytest
import torch

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.inference.sliding_window import (compute_window_starts,
                                                    gaussian_importance_map,
                                                    sliding_window_predict, window_slices)
from swinfuse_auto.inference.tiling import (TileGrid, axis_starts, plan_tiles, tile_grid,
                                            tile_importance_map)

PATCH = (32, 64, 64)
DIVISOR = 32
SHAPES = [(45, 300, 260), (32, 64, 64), (33, 65, 129), (96, 200, 97), (70, 512, 512)]
BUDGETS = [None, 0, math.prod(PATCH), 4 * math.prod(PATCH), 64 * 256 * 256]


def _coverage(grid: TileGrid, shape: tuple[int, int, int]) -> torch.Tensor:
    hits = torch.zeros(shape, dtype=torch.int32)
    for where in grid.slices():
        hits[where] += 1
    return hits


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("budget", BUDGETS)
def test_tiles_lie_inside_cover_every_voxel_and_are_at_least_the_patch(
        shape: tuple[int, int, int], budget: int | None) -> None:
    grid = plan_tiles(shape, PATCH, DIVISOR, budget)
    assert all(t >= p and t % DIVISOR == 0 for t, p in zip(grid.tile, PATCH))
    for where in grid.slices():
        assert all(0 <= s.start and s.stop <= n for s, n in zip(where, shape))
    assert bool((_coverage(grid, shape) > 0).all())
    if budget is not None and budget >= math.prod(PATCH):
        assert grid.tile_voxels <= budget


def _sliding_window_starts(shape: tuple[int, ...], patch: tuple[int, ...], step: float
                           ) -> list[list[int]]:
    """The sliding window's placement as it was before tiles (nnU-Net's), kept as the reference."""
    starts = []
    for size, p in zip(shape, patch):
        span = size - p
        if span <= 0:
            starts.append([0])
            continue
        intervals = math.ceil(span / (p * step))
        starts.append([(2 * i * span + intervals) // (2 * intervals) for i in range(intervals + 1)])
    return starts


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("step", [0.5, 0.25, 1.0])
def test_a_budget_of_one_patch_gives_the_sliding_window(shape: tuple[int, int, int],
                                                        step: float) -> None:
    grid = plan_tiles(shape, PATCH, DIVISOR, math.prod(PATCH), step)
    reference = _sliding_window_starts(shape, PATCH, step)
    assert grid.tile == PATCH and [list(s) for s in grid.starts] == reference
    assert compute_window_starts(shape, PATCH, step) == reference
    assert grid.slices() == window_slices(shape, PATCH, step)
    assert plan_tiles(shape, PATCH, DIVISOR, 0, step) == grid  # no budget at all: windows too


def test_the_window_placement_is_nnunets() -> None:
    # 300 voxels, 64-voxel windows, step <= 32: 8 intervals over 236 voxels, rounded half up
    assert axis_starts(300, 64, 64, 0.5) == [0, 30, 59, 89, 118, 148, 177, 207, 236]
    assert axis_starts(64, 64, 64, 0.5) == [0] and axis_starts(40, 64, 64) == [0]


@pytest.mark.parametrize("size,tile", [(300, 128), (512, 256), (200, 96), (1000, 320)])
@pytest.mark.parametrize("step", [0.5, 0.25])
def test_neighbouring_tiles_overlap_by_the_window_overlap_in_voxels(size: int, tile: int,
                                                                     step: float) -> None:
    starts = axis_starts(size, tile, 64, step)
    overlaps = [tile - (b - a) for a, b in zip(starts, starts[1:])]
    assert min(overlaps) >= (1 - step) * 64  # not a fraction of the (larger) tile
    assert max(overlaps) < tile  # no tile repeats another
    assert starts[0] == 0 and starts[-1] == size - tile  # the last tile shifted back, not padded


def test_large_budget_gives_few_large_tiles_that_predict_fewer_voxels() -> None:
    shape = (70, 512, 512)
    windows = plan_tiles(shape, PATCH, DIVISOR, math.prod(PATCH))
    tiles = plan_tiles(shape, PATCH, DIVISOR, 64 * 256 * 256)
    unlimited = plan_tiles(shape, PATCH, DIVISOR)
    assert tiles.count < windows.count and tiles.total_voxels < windows.total_voxels
    assert unlimited.tile == (64, 512, 512) and unlimited.count == 2  # 70 is not a multiple of 32
    assert unlimited.total_voxels <= tiles.total_voxels


def test_the_docstring_example_holds() -> None:
    assert plan_tiles((48, 512, 512), (32, 160, 160), 32).tile == (32, 512, 512)


def test_an_axis_shorter_than_the_patch_takes_one_patch_long_tile() -> None:
    # the caller pads such an axis to the patch; the tile never goes beyond that
    grid = plan_tiles((32, 64, 300), PATCH, DIVISOR)
    assert grid.tile[:2] == (32, 64) and grid.starts[:2] == ((0,), (0,))


@pytest.mark.parametrize("kwargs,message", [
    ({"shape": (40, 64, 64), "tile": (64, 64, 64)}, "inside the volume"),
    ({"shape": (64, 64, 64), "tile": (16, 64, 64)}, "at least the patch"),
    ({"shape": (64, 64), "tile": (32, 64, 64)}, "three positive voxel counts"),
])
def test_tile_grid_refuses_tiles_outside_the_volume_or_below_the_patch(
        kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tile_grid(kwargs["shape"], kwargs["tile"], PATCH)


def test_plan_tiles_refuses_a_patch_the_divisor_does_not_divide() -> None:
    with pytest.raises(ConfigError, match="divisor"):
        plan_tiles((64, 64, 64), (32, 48, 64), DIVISOR)
    with pytest.raises(ConfigError, match="step_fraction"):
        axis_starts(100, 64, 64, 0.0)


def test_the_blending_map_of_a_patch_sized_tile_is_the_windows_gaussian() -> None:
    assert torch.equal(tile_importance_map(PATCH, PATCH), gaussian_importance_map(PATCH))


def test_the_blending_map_is_flat_inside_and_gaussian_near_the_borders() -> None:
    patch = (32, 32, 32)
    weight = tile_importance_map((32, 32, 128), patch)
    assert weight.shape == (32, 32, 128) and weight.dtype == torch.float32
    profile = weight[15, 15]  # through the centre of z and y, along x
    assert torch.allclose(profile[16:112], profile[16].expand(96))  # the core: no fall-off
    assert float(profile[0]) < 0.2 * float(profile[16])  # the border counts little
    assert torch.equal(profile, profile.flip(0))  # symmetric
    assert float(weight.max()) == 1.0 and bool((weight > 0).all())
    # the border of a long tile falls off exactly like the window's Gaussian
    window = gaussian_importance_map(patch)[15, 15]
    assert torch.allclose(profile[:16] / profile[15], window[:16] / window[15])


def test_tiled_prediction_of_a_local_predictor_equals_the_window_prediction() -> None:
    """A predictor with no spatial context (a per-voxel function) gives the same probabilities
    whatever the tiles: the blending weights are normalised, so only the network's context can
    make tiles differ."""
    volume = torch.randn(1, 40, 70, 90, generator=torch.Generator().manual_seed(0))

    def per_voxel(batch: torch.Tensor) -> torch.Tensor:
        return torch.cat([batch, -batch, 0.5 * batch ** 2], dim=1)

    patch = (32, 32, 32)
    windows = sliding_window_predict(volume, per_voxel, patch, 3)
    tiled = sliding_window_predict(volume, per_voxel, patch, 3, tile_size=(32, 64, 64))
    assert torch.allclose(windows, tiled, atol=1e-5)
    with pytest.raises(ConfigError, match="inside the volume"):
        sliding_window_predict(volume, per_voxel, patch, 3, tile_size=(64, 64, 64))
