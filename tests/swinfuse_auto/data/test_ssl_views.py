from __future__ import annotations

import pytest
import torch

from swinfuse_auto.data.ssl_views import (
    cuboid_noise_cutout,
    intensity_augment,
    make_views,
    patch_swap,
    rotate_views,
    rotation_plane,
)
from swinfuse_auto.errors import ConfigError

SHAPES = [(1, 1, 32, 64, 64), (4, 1, 32, 64, 64), (4, 1, 16, 16, 16)]


def _batch(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", SHAPES)
def test_rotating_back_by_the_label_recovers_the_crop(shape: tuple[int, ...]) -> None:
    x = _batch(shape)
    rotated, labels = rotate_views(x, _gen())
    assert rotated.shape == x.shape and labels.shape == (shape[0],)
    assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() <= 3
    a, b = rotation_plane(x.shape)
    for sample, original, k in zip(rotated, x, labels.tolist()):
        assert torch.equal(torch.rot90(sample, -k, dims=(a - 1, b - 1)), original)


def test_every_rotation_label_occurs() -> None:
    _, labels = rotate_views(_batch((64, 1, 2, 4, 4)), _gen())
    assert set(labels.tolist()) == {0, 1, 2, 3}


def test_rotation_plane_prefers_axial_and_rejects_crops_without_equal_axes() -> None:
    assert rotation_plane((1, 1, 32, 64, 64)) == (3, 4)
    assert rotation_plane((1, 1, 64, 64, 32)) == (2, 3)
    with pytest.raises(ConfigError, match="32x48x64"):
        rotation_plane((1, 1, 32, 48, 64))


@pytest.mark.parametrize("shape", SHAPES)
def test_cutout_covers_at_most_30_percent_and_mask_marks_changed_voxels(
        shape: tuple[int, ...]) -> None:
    x = _batch(shape)
    corrupted, mask = cuboid_noise_cutout(x, _gen())
    assert corrupted.shape == x.shape and mask.shape == (shape[0], 1, *shape[2:])
    coverage = mask.float().mean(dim=(1, 2, 3, 4))
    assert (coverage > 0).all() and (coverage <= 0.3).all()
    assert torch.equal(corrupted != x, mask.expand_as(x))


def test_cutout_respects_a_smaller_cap_and_rejects_bad_fractions() -> None:
    x = _batch((4, 1, 32, 32, 32))
    _, mask = cuboid_noise_cutout(x, _gen(), max_fraction=0.05)
    assert (mask.float().mean(dim=(1, 2, 3, 4)) <= 0.05).all()
    with pytest.raises(ConfigError, match="edge_range"):
        cuboid_noise_cutout(x, _gen(), edge_range=(0.3, 0.1))


@pytest.mark.parametrize("shape", SHAPES)
def test_patch_swap_changes_only_the_swapped_regions(shape: tuple[int, ...]) -> None:
    x = _batch(shape)
    swapped, mask = patch_swap(x, _gen())
    assert swapped.shape == x.shape and mask.any()
    changed = swapped != x
    assert changed.any()
    assert not (changed & ~mask.expand_as(x)).any()
    assert (mask.float().mean(dim=(1, 2, 3, 4)) <= 0.3).all()


def test_patch_swap_copies_values_from_another_sample() -> None:
    x = torch.arange(4.0).view(4, 1, 1, 1, 1).expand(4, 1, 16, 16, 16).contiguous()
    swapped, mask = patch_swap(x, _gen())
    for i in range(4):
        pasted = swapped[i][mask[i]]
        assert (pasted != i).all()  # a constant sample can only change through another one


def test_intensity_augment_is_finite_changes_values_and_handles_constant_crops() -> None:
    x = _batch((4, 1, 16, 16, 16))
    out = intensity_augment(x, _gen())
    assert out.shape == x.shape and torch.isfinite(out).all() and not torch.equal(out, x)
    constant = intensity_augment(torch.full((1, 1, 8, 8, 8), 3.0), _gen())
    assert torch.isfinite(constant).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_make_views_builds_two_independent_consistent_views(shape: tuple[int, ...]) -> None:
    x = _batch(shape)
    views = make_views(x, _gen())
    for view, target, mask, labels in ((views.view1, views.target1, views.mask1, views.rotation1),
                                       (views.view2, views.target2, views.mask2, views.rotation2)):
        assert view.shape == target.shape == x.shape and labels.shape == (shape[0],)
        assert not ((view != target) & ~mask.expand_as(x)).any()
        assert mask.any()
    assert not torch.equal(views.view1, views.view2)


def test_make_views_without_intensity_targets_the_rotated_clean_crop() -> None:
    x = _batch((2, 1, 16, 32, 32))
    views = make_views(x, _gen(), intensity=False)
    a, b = rotation_plane(x.shape)
    for target, original, k in zip(views.target1, x, views.rotation1.tolist()):
        assert torch.equal(target, torch.rot90(original, k, dims=(a - 1, b - 1)))


def test_views_are_deterministic_for_a_seed() -> None:
    x = _batch((4, 1, 16, 32, 32))
    first, second, other = (make_views(x, _gen(seed)) for seed in (7, 7, 8))
    for name in ("view1", "view2", "rotation1", "rotation2", "target1", "mask2"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert not torch.equal(first.view1, other.view1)
