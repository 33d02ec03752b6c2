"""Pre-training views: rotation, cuboid noise cut-out, patch swap and intensity augmentation.

Tang et al. (CVPR 2022) build each view of a crop by rotating it (0/90/180/270 degrees, the
rotation task's label), then replacing cuboids with noise (up to 30% of the voxels, each edge 5-25%
of the crop), then pasting patches from another sample. The network inpaints the rotated clean
crop, predicts the rotation, and contrasts the two views of each sample.

All functions take batches (N, C, Z, Y, X) on any device and draw every random number from the
given ``torch.Generator``, so a seed reproduces the views exactly. Numbers are drawn on the
generator's device and moved to the data: a CPU generator works with GPU data (a generator on
the data's device avoids the copy of the noise tensors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.plans.crop_rules import rotation_plane_zyx, square_in_plane

Box = tuple[tuple[int, ...], tuple[int, ...]]  # (start, size) per spatial axis
Number = TypeVar("Number", float, Tensor)
_MAX_CUBOID_DRAWS = 64  # cap on draws per sample: rejected draws must not loop forever
_MIN_NOISE_STD = 1e-3  # a constant crop still gets visible noise
_EPS = 1e-6


def rotation_plane(shape: Sequence[int]) -> tuple[int, int]:
    """The plane (two dims of a 5D batch) that rotations use for crops of this shape.

    rot90 keeps a crop's shape only in a plane whose two axes are equal, so the first such plane
    of axial (y, x), coronal (z, x) and sagittal (z, y) is used. A 32x64x64 crop rotates axially.
    The planner gives every pre-training crop such a plane (``pretraining.patch_size``).

    Raises:
        ConfigError: if no plane has two equal axes.
    """
    plane = rotation_plane_zyx(shape[-3:])
    if plane is None:
        raise ConfigError(f"Rotation pre-training needs two equal axes in one plane, but the crop "
                          f"is {'x'.join(map(str, shape[-3:]))} (z x y x x). Set "
                          f"pretraining.patch_size in plans.json to one with y == x, e.g. "
                          f"{'x'.join(map(str, square_in_plane(shape[-3:])))}.")
    return plane[0] + 2, plane[1] + 2


def rotate_views(x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Rotate each sample by a random multiple of 90 degrees in :func:`rotation_plane`.

    Returns:
        The rotated batch (same shape) and (N,) int64 labels k in 0..3, where sample i was
        rotated by ``torch.rot90(x[i], k, dims=(a - 1, b - 1))`` for the plane (a, b).
    """
    _check_batch(x)
    a, b = rotation_plane(x.shape)
    labels = torch.randint(0, 4, (x.shape[0],), generator=generator, device=generator.device)
    rotated = torch.stack([torch.rot90(sample, k, dims=(a - 1, b - 1))
                           for sample, k in zip(x, labels.tolist())])
    return rotated, labels.to(x.device)


def cuboid_noise_cutout(x: Tensor, generator: torch.Generator, max_fraction: float = 0.3,
                        edge_range: tuple[float, float] = (0.05, 0.25)) -> tuple[Tensor, Tensor]:
    """Replace random cuboids of each sample with Gaussian noise.

    Per sample a target coverage is drawn uniformly in (0, ``max_fraction``); cuboids with each
    edge a uniform ``edge_range`` fraction of that axis are added until the target is reached,
    and a cuboid that would push the covered voxels past ``max_fraction`` is rejected, so the
    coverage never exceeds it. At least one cuboid is placed whenever one fits. The noise has the
    sample's own mean and standard deviation, so it is plausible for any modality or
    normalisation (Tang et al. min-max scale it into their [0, 1] CT range).

    Returns:
        The corrupted batch and a (N, 1, Z, Y, X) boolean mask of the replaced voxels.

    Raises:
        ConfigError: if ``max_fraction`` or ``edge_range`` is outside (0, 1].
    """
    _check_batch(x)
    _check_fractions(max_fraction, edge_range)
    mask = torch.stack([_sample_boxes(x.shape[2:], generator, max_fraction, edge_range)[1]
                        for _ in range(x.shape[0])])[:, None].to(x.device)
    dims = tuple(range(1, x.ndim))
    xf = x.float()
    mean, std = xf.mean(dims, keepdim=True), xf.std(dims, keepdim=True).clamp_min(_MIN_NOISE_STD)
    noise = _randn(x.shape, generator).to(x.device) * std + mean
    return torch.where(mask, noise.to(x.dtype), x), mask


def patch_swap(x: Tensor, generator: torch.Generator, max_fraction: float = 0.3,
               edge_range: tuple[float, float] = (0.05, 0.25)) -> tuple[Tensor, Tensor]:
    """Paste cuboids taken from another sample of the batch into each sample.

    Cuboids are laid out as in :func:`cuboid_noise_cutout`; each is filled from a random location
    of a donor, a random other sample (Tang et al.'s "patches from another sample"). With batch
    size 1 the donor is the sample itself and the source location is redrawn until it differs
    from the destination (when the axes allow it), so the view still changes. Sources are read
    from the input batch, so the result does not depend on the order of the samples.

    Returns:
        The batch with pasted patches and a (N, 1, Z, Y, X) boolean mask of the pasted voxels.

    Raises:
        ConfigError: if ``max_fraction`` or ``edge_range`` is outside (0, 1].
    """
    _check_batch(x)
    _check_fractions(max_fraction, edge_range)
    n, spatial = x.shape[0], tuple(x.shape[2:])
    out, masks = x.clone(), []
    for i in range(n):
        donor = i if n == 1 else (i + 1 + _randint(n - 1, generator)) % n
        boxes, mask = _sample_boxes(spatial, generator, max_fraction, edge_range)
        for start, size in boxes:
            source = _source_start(start, size, spatial, generator, same_sample=donor == i)
            out[(i, slice(None), *_slices(start, size))] = \
                x[(donor, slice(None), *_slices(source, size))]
        masks.append(mask)
    return out, torch.stack(masks)[:, None].to(x.device)


def intensity_augment(x: Tensor, generator: torch.Generator,
                      gamma_range: tuple[float, float] = (0.7, 1.5),
                      scale_range: tuple[float, float] = (0.9, 1.1),
                      shift_range: tuple[float, float] = (-0.1, 0.1),
                      noise_range: tuple[float, float] = (0.0, 0.05)) -> Tensor:
    """Modality-agnostic intensity change, drawn independently per sample.

    Without it the two views of a crop would share their exact intensity histogram, and the
    contrastive task could be solved from intensity statistics (which also separate CT from MR)
    rather than anatomy. Per sample: min-max scale to [0, 1], apply a log-uniform gamma from
    ``gamma_range``, restore the sample's mean and standard deviation (so the statistics do not
    leak the gamma), multiply by a factor from ``scale_range``, shift by ``shift_range`` standard
    deviations and add Gaussian noise of ``noise_range`` standard deviations. Everything is
    relative to the sample's own statistics, so it works for HU-based and z-scored crops alike.
    """
    _check_batch(x)
    dims = tuple(range(1, x.ndim))
    u = torch.rand(x.shape[0], 4, generator=generator, device=generator.device).to(x.device)
    u = u.view(-1, 4, *([1] * (x.ndim - 1)))
    gamma = torch.exp(_lerp(math.log(gamma_range[0]), math.log(gamma_range[1]), u[:, 0]))
    xf = x.float()
    mean, std = xf.mean(dims, keepdim=True), xf.std(dims, keepdim=True)
    low, high = xf.amin(dims, keepdim=True), xf.amax(dims, keepdim=True)
    v = ((xf - low) / (high - low).clamp_min(_EPS)) ** gamma
    v = (v - v.mean(dims, keepdim=True)) / v.std(dims, keepdim=True).clamp_min(_EPS) * std + mean
    v = v * _lerp(*scale_range, u[:, 1]) + _lerp(*shift_range, u[:, 2]) * std
    noise = _randn(x.shape, generator).to(x.device)
    return (v + noise * _lerp(*noise_range, u[:, 3]) * std).to(x.dtype)


@dataclass
class PretrainingViews:
    """Two independently augmented views of a batch and what each pre-training task needs.

    Attributes:
        view1, view2: (N, C, Z, Y, X) network inputs (rotated, intensity-augmented, corrupted).
        rotation1, rotation2: (N,) rotation labels in 0..3 of each view.
        target1, target2: inpainting targets: the rotated, intensity-augmented crop before
            corruption, so inpainting asks only for the missing content.
        mask1, mask2: (N, 1, Z, Y, X) boolean masks of the corrupted voxels (noise or pasted).
    """

    view1: Tensor
    view2: Tensor
    rotation1: Tensor
    rotation2: Tensor
    target1: Tensor
    target2: Tensor
    mask1: Tensor
    mask2: Tensor


def make_views(x: Tensor, generator: torch.Generator, intensity: bool = True,
               max_fraction: float = 0.3,
               edge_range: tuple[float, float] = (0.05, 0.25)) -> PretrainingViews:
    """Build the two pre-training views of a batch of crops, as Tang et al. do.

    Each view: :func:`rotate_views`, then (if ``intensity``) :func:`intensity_augment`, then
    :func:`cuboid_noise_cutout` and :func:`patch_swap`, each covering up to ``max_fraction``.

    Args:
        x: (N, C, Z, Y, X) clean crops; two of the axes of one plane must be equal.
        generator: source of every random number.
        intensity: apply the intensity augmentation (off reproduces Tang et al.'s views).
        max_fraction: coverage cap of the cut-out and of the patch swap, each.
        edge_range: cuboid edge length as a fraction of the crop axis.

    Raises:
        ConfigError: if the crop has no rotation plane or the fractions are invalid.

    Example:
        >>> views = make_views(torch.randn(2, 1, 32, 64, 64), torch.Generator().manual_seed(0))
        >>> views.view1.shape, views.rotation1.shape
        (torch.Size([2, 1, 32, 64, 64]), torch.Size([2]))
    """
    one, two = (_one_view(x, generator, intensity, max_fraction, edge_range) for _ in range(2))
    return PretrainingViews(view1=one[0], view2=two[0], rotation1=one[1], rotation2=two[1],
                            target1=one[2], target2=two[2], mask1=one[3], mask2=two[3])


def _one_view(x: Tensor, generator: torch.Generator, intensity: bool, max_fraction: float,
              edge_range: tuple[float, float]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    rotated, labels = rotate_views(x, generator)
    target = intensity_augment(rotated, generator) if intensity else rotated
    corrupted, noise_mask = cuboid_noise_cutout(target, generator, max_fraction, edge_range)
    view, swap_mask = patch_swap(corrupted, generator, max_fraction, edge_range)
    return view, labels, target, noise_mask | swap_mask


def _sample_boxes(spatial: Sequence[int], generator: torch.Generator, max_fraction: float,
                  edge_range: tuple[float, float]) -> tuple[list[Box], Tensor]:
    """Cuboids for one sample and the (Z, Y, X) mask of their union (at most max_fraction)."""
    total = math.prod(spatial)
    mask = torch.zeros(tuple(spatial), dtype=torch.bool)
    target = _rand(1, generator)[0] * max_fraction * total
    boxes: list[Box] = []
    covered = 0
    for _ in range(_MAX_CUBOID_DRAWS):
        if boxes and covered >= target:
            break
        u = _rand(6, generator)
        size = tuple(min(n, max(1, round(_lerp(*edge_range, f) * n)))
                     for n, f in zip(spatial, u[:3]))
        start = tuple(min(n - s, int(f * (n - s + 1))) for n, s, f in zip(spatial, size, u[3:]))
        region = mask[_slices(start, size)]
        added = int((~region).sum())
        if covered + added > max_fraction * total:
            continue
        region.fill_(True)
        covered += added
        boxes.append((start, size))
    return boxes, mask


def _source_start(start: tuple[int, ...], size: tuple[int, ...], spatial: Sequence[int],
                  generator: torch.Generator, same_sample: bool) -> tuple[int, ...]:
    """A random source corner; within the same sample, one that differs from ``start``."""
    source = start
    for _ in range(_MAX_CUBOID_DRAWS):
        u = _rand(3, generator)
        source = tuple(min(n - s, int(f * (n - s + 1))) for n, s, f in zip(spatial, size, u))
        if not same_sample or source != start:
            break
    return source


def _slices(start: Sequence[int], size: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(a, a + s) for a, s in zip(start, size))


def _lerp(low: float, high: float, fraction: Number) -> Number:
    return low + (high - low) * fraction


def _rand(n: int, generator: torch.Generator) -> list[float]:
    return torch.rand(n, generator=generator, device=generator.device).tolist()


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(0, high, (1,), generator=generator, device=generator.device))


def _randn(shape: Sequence[int], generator: torch.Generator) -> Tensor:
    return torch.randn(tuple(shape), generator=generator, device=generator.device)


def _check_batch(x: Tensor) -> None:
    if x.ndim != 5:
        raise ValueError(f"expected a batch of crops (N, C, Z, Y, X), found shape {tuple(x.shape)}")


def _check_fractions(max_fraction: float, edge_range: tuple[float, float]) -> None:
    low, high = edge_range
    if not 0 < max_fraction <= 1 or not 0 < low <= high <= 1:
        raise ConfigError(f"expected 0 < max_fraction <= 1 and 0 < edge_range[0] <= "
                          f"edge_range[1] <= 1, found max_fraction={max_fraction}, "
                          f"edge_range={edge_range}")
