"""One synthetic case in memory: subject, grid, image and label, all from (seed, modality, index).

Each case draws from its own seed sequence ``(seed, modality, index)``, so case ``ct_003`` is the
same whether 4 or 40 cases are generated, and the subject's anatomy does not change when only the
spacing is overridden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from swinfuse_auto.example_data.anatomy import label_map, rasterise, sample_anatomy
from swinfuse_auto.example_data.grid import (MR_FIELD_OF_VIEW, ORIENTATIONS, direction_for,
                                             make_grid, nominal_spacing, sample_spacing)
from swinfuse_auto.example_data.intensity import MR_CONTRASTS, ct_image, mr_image
from swinfuse_auto.io.image import Geometry

MODALITIES = {"CT": 0, "MR": 1}
"""Modality -> stream number of the seed sequence (and offset in the orientation cycle)."""


def mr_contrast(index: int) -> str:
    """MR case ``index`` is T1-weighted when even, T2-weighted when odd."""
    return tuple(MR_CONTRASTS)[index % len(MR_CONTRASTS)]


@dataclass(frozen=True)
class SyntheticCase:
    """A generated case: arrays in (z, y, x) order and the geometry they share.

    ``tissue`` is the finer tissue map behind both arrays (fat, muscle, discs ...), handy for
    tests that check contrast of structures without a label. ``contrast`` is "CT", "T1" or "T2"
    (the channel name the case is written with).
    """

    case_id: str
    modality: str
    contrast: str
    image: np.ndarray
    label: np.ndarray
    tissue: np.ndarray
    geometry: Geometry


def field_of_view_mm(shape: tuple[int, int, int],
                     spacing: tuple[float, float, float] | None) -> np.ndarray:
    """The physical (z, y, x) extent shared by all cases of a dataset.

    With random spacing the nominal mid-range spacing sets it, so each case's voxel shape
    scatters around ``shape`` while the anatomy keeps its size in mm.
    """
    return np.array(shape, dtype=np.float64) * np.array(spacing or nominal_spacing())


def case_id(modality: str, index: int) -> str:
    """``ct_000``, ``mr_003``: the modality in the id keeps the two sets apart in any listing."""
    return f"{modality.lower()}_{index:03d}"


def synthesize_case(modality: str, index: int, *, shape: tuple[int, int, int], seed: int,
                    spacing: tuple[float, float, float] | None = None) -> SyntheticCase:
    """Generate case ``index`` of ``modality`` ("CT" or "MR") without touching the disk.

    MR cases are their own subjects (another seed stream than CT), alternate between T1 and T2
    contrast (:func:`mr_contrast`) and, with random spacing, follow MR protocols: thicker slices,
    coarser in-plane spacing and another field of view (:data:`MR_FIELD_OF_VIEW`).

    Args:
        modality: "CT" (int16 HU) or "MR" (uint16, T1- or T2-weighted).
        index: case number within its modality.
        shape: nominal (z, y, x) voxel count of the dataset.
        seed: dataset seed.
        spacing: (z, y, x) mm for every case; None draws an anisotropic spacing per case.

    Example:
        >>> case = synthesize_case("CT", 0, shape=(32, 48, 48), seed=0)
        >>> case.image.dtype, case.label.shape == case.image.shape
        (dtype('int16'), True)
    """
    stream = MODALITIES[modality]
    anatomy_seed, grid_seed, intensity_seed = np.random.SeedSequence([seed, stream, index]).spawn(3)
    anatomy = sample_anatomy(np.random.default_rng(anatomy_seed))

    rng = np.random.default_rng(grid_seed)
    fov_zyx = field_of_view_mm(shape, spacing)
    half_extent = fov_zyx[::-1] / 2.0  # ITK order: the anatomy's scale, the same for every case
    case_spacing = spacing if spacing is not None else sample_spacing(rng, modality)
    if modality == "MR" and spacing is None:  # a fixed spacing asks for the exact shape
        fov_zyx = fov_zyx * np.array(MR_FIELD_OF_VIEW)
    orientation = ORIENTATIONS[(index + stream) % len(ORIENTATIONS)]
    direction = direction_for(orientation, rng)
    table_position = np.array([rng.uniform(-20.0, 20.0), rng.uniform(-40.0, 0.0),
                               rng.uniform(-600.0, -100.0)])
    shift = rng.uniform(-0.04, 0.04, 3) * half_extent
    grid = make_grid(case_spacing, fov_zyx, direction, table_position, shift, half_extent)

    tissue = rasterise(anatomy, grid)
    intensity_rng = np.random.default_rng(intensity_seed)
    if modality == "CT":
        contrast, image = "CT", ct_image(tissue, grid, intensity_rng)
    else:
        contrast = mr_contrast(index)
        image = mr_image(tissue, grid, intensity_rng, MR_CONTRASTS[contrast])
    return SyntheticCase(case_id(modality, index), modality, contrast, image, label_map(tissue),
                         tissue, grid.geometry)
