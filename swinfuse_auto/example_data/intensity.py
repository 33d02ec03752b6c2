"""CT, T1-weighted and T2-weighted (fat-suppressed) MR appearance of a tissue map.

The three models deliberately order the tissues differently (fat is the darkest soft tissue in
CT, the brightest in T1 and suppressed in T2-SPIR; the aorta is bright with contrast in CT and a
dark flow void in MR; the spleen is darker than the liver in T1 and brighter in T2, the kidneys
darker in T1 and brightest in T2), so pre-training and out-of-modality tests see a real domain gap
on the same anatomy, and T1 and T2 differ from each other as much as from CT. All add what breaks
naive pipelines: partial-volume blur, noise, and for MR an arbitrary scale, Rician noise and a
smooth multiplicative bias field.

Volumes are float32 and noise is added slab by slab, so a 512x512x120 case never holds more than
the volume plus one slab of temporaries.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from swinfuse_auto.example_data.anatomy import Tissue
from swinfuse_auto.example_data.grid import CaseGrid, z_slabs

# (typical value, +- per-case spread) per tissue
CT_HU: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000.0, 0.0), Tissue.SUBCUTANEOUS_FAT: (-100.0, 10.0),
    Tissue.MUSCLE: (55.0, 5.0), Tissue.VISCERA: (30.0, 5.0), Tissue.VISCERAL_FAT: (-90.0, 10.0),
    Tissue.LIVER: (100.0, 5.0), Tissue.SPLEEN: (120.0, 5.0), Tissue.KIDNEY: (155.0, 10.0),
    Tissue.BONE: (700.0, 40.0), Tissue.DISC: (80.0, 8.0), Tissue.AORTA: (200.0, 20.0),
}
"""Portal-venous-phase CT in Hounsfield units: every organ is contrast-enhanced.

At about 70 s after injection the liver sits near 100-110 HU and the spleen 10-20 HU above it,
the renal parenchyma and the aorta at 150-200 HU, while bowel and mesentery stay near 30 HU.
Liver and spleen therefore differ by little more than the noise, as in real scans: a network has
to tell them apart by size, shape and place, not by intensity alone. (Unenhanced values, liver
60 and spleen 50 HU, would leave the spleen within the noise of bowel as well, which no real
abdominal CT protocol for organ segmentation does.)
"""

MR_T1: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (0.0, 0.0), Tissue.SUBCUTANEOUS_FAT: (1000.0, 40.0),
    Tissue.MUSCLE: (300.0, 20.0), Tissue.VISCERA: (350.0, 25.0),
    Tissue.VISCERAL_FAT: (950.0, 40.0), Tissue.LIVER: (520.0, 25.0),
    Tissue.SPLEEN: (380.0, 20.0), Tissue.KIDNEY: (270.0, 20.0), Tissue.BONE: (90.0, 15.0),
    Tissue.DISC: (230.0, 20.0), Tissue.AORTA: (50.0, 10.0),
}
"""T1-weighted MR before the per-case scanner gain, in arbitrary units."""

MR_T2: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (0.0, 0.0), Tissue.SUBCUTANEOUS_FAT: (140.0, 20.0),
    Tissue.MUSCLE: (160.0, 15.0), Tissue.VISCERA: (720.0, 60.0),
    Tissue.VISCERAL_FAT: (130.0, 20.0), Tissue.LIVER: (300.0, 20.0),
    Tissue.SPLEEN: (560.0, 30.0), Tissue.KIDNEY: (650.0, 40.0), Tissue.BONE: (210.0, 20.0),
    Tissue.DISC: (600.0, 40.0), Tissue.AORTA: (60.0, 10.0),
}
"""Fat-suppressed T2-weighted MR (as CHAOS T2-SPIR) before the per-case gain, arbitrary units:
fluid-filled bowel, kidneys, discs and spleen bright, liver darker, fat and muscle dark."""

MR_CONTRASTS: dict[str, dict[Tissue, tuple[float, float]]] = {"T1": MR_T1, "T2": MR_T2}

CT_NOISE_HU = (10.0, 20.0)
MR_NOISE_FRACTION = (0.02, 0.05)  # of the liver signal
#: Bias field: linear and quadratic coefficients (normalised coordinates) of its logarithm.
MR_BIAS_LINEAR = 0.25
MR_BIAS_QUADRATIC = 0.15
MR_GAIN = (0.6, 1.6)
BLUR_MM = (0.5, 0.8)


def _tissue_values(table: dict[Tissue, tuple[float, float]], rng: np.random.Generator,
                   gain: float = 1.0) -> np.ndarray:
    """Per-case lookup table: each tissue's value drawn within its spread."""
    values = np.array([table[t][0] + rng.uniform(-1.0, 1.0) * table[t][1] for t in Tissue])
    return (values * gain).astype(np.float32)


def _blur(volume: np.ndarray, grid: CaseGrid, rng: np.random.Generator) -> None:
    """Partial-volume blur in place: a point-spread of a fraction of a mm, wider along z.

    The slice profile adds about a third of a slice along z, which is what makes thick-slice
    boundaries soft in real scans.
    """
    sigma_mm = float(rng.uniform(*BLUR_MM))
    spacing = np.array(grid.geometry.spacing_zyx)
    sigma = sigma_mm / spacing
    sigma[0] = float(np.hypot(sigma[0], 0.35))
    for axis, value in enumerate(sigma):
        if value >= 0.25:
            ndimage.gaussian_filter1d(volume, float(value), axis=axis, output=volume,
                                      truncate=2.5)


def _add_gaussian_noise(volume: np.ndarray, sigma: float, rng: np.random.Generator) -> None:
    """CT noise is close to Gaussian in HU at these dose levels; added slab by slab."""
    buffer = np.empty((next(z_slabs(volume.shape)).stop,) + volume.shape[1:], dtype=np.float32)
    for slab in z_slabs(volume.shape):
        noise = buffer[: slab.stop - slab.start]
        rng.standard_normal(out=noise, dtype=np.float32)
        noise *= np.float32(sigma)
        volume[slab] += noise


def _add_rician_noise(volume: np.ndarray, sigma: float, rng: np.random.Generator) -> None:
    """Magnitude of a complex signal with Gaussian noise in both channels.

    This is why MR background is not zero and why dark tissue is biased upwards, which
    normalisation and intensity statistics have to cope with.
    """
    shape = (next(z_slabs(volume.shape)).stop,) + volume.shape[1:]
    real, imaginary = np.empty(shape, np.float32), np.empty(shape, np.float32)
    for slab in z_slabs(volume.shape):
        n = slab.stop - slab.start
        rng.standard_normal(out=real[:n], dtype=np.float32)
        rng.standard_normal(out=imaginary[:n], dtype=np.float32)
        real[:n] *= np.float32(sigma)
        real[:n] += volume[slab]
        real[:n] *= real[:n]
        imaginary[:n] *= np.float32(sigma)
        imaginary[:n] *= imaginary[:n]
        real[:n] += imaginary[:n]
        np.sqrt(real[:n], out=volume[slab])


def _apply_bias_field(volume: np.ndarray, grid: CaseGrid, rng: np.random.Generator) -> None:
    """Multiply by exp(quadratic in x, y) * exp(quadratic in z): coil sensitivity in miniature.

    The in-plane and through-plane parts are separate factors, so on axial grids the field is a
    2D image times a 1D profile and costs one broadcast multiply each.
    """
    ux, uy, uz = grid.coordinates()
    linear = rng.uniform(-MR_BIAS_LINEAR, MR_BIAS_LINEAR, 3).astype(np.float32)
    quadratic = rng.uniform(-MR_BIAS_QUADRATIC, MR_BIAS_QUADRATIC, 4).astype(np.float32)
    in_plane = (linear[0] * ux + linear[1] * uy + quadratic[0] * ux * ux
                + quadratic[1] * uy * uy + quadratic[2] * ux * uy)
    through_plane = linear[2] * uz + quadratic[3] * uz * uz
    volume *= np.exp(in_plane)
    volume *= np.exp(through_plane)


def ct_image(tissue: np.ndarray, grid: CaseGrid, rng: np.random.Generator) -> np.ndarray:
    """CT volume in HU (int16, clipped to the scanner range -1024..3071)."""
    volume = _tissue_values(CT_HU, rng)[tissue]
    _blur(volume, grid, rng)
    _add_gaussian_noise(volume, float(rng.uniform(*CT_NOISE_HU)), rng)
    np.clip(volume, -1024.0, 3071.0, out=volume)
    return np.rint(volume, out=volume).astype(np.int16)


def mr_image(tissue: np.ndarray, grid: CaseGrid, rng: np.random.Generator,
             table: dict[Tissue, tuple[float, float]] = MR_T1) -> np.ndarray:
    """MR volume of contrast ``table`` (:data:`MR_T1`, :data:`MR_T2`) in arbitrary units (uint16)."""
    gain = float(rng.uniform(*MR_GAIN))
    values = _tissue_values(table, rng, gain)
    volume = values[tissue]
    _blur(volume, grid, rng)
    _apply_bias_field(volume, grid, rng)
    sigma = float(rng.uniform(*MR_NOISE_FRACTION)) * float(values[Tissue.LIVER])
    _add_rician_noise(volume, sigma, rng)
    np.clip(volume, 0.0, 65535.0, out=volume)
    return np.rint(volume, out=volume).astype(np.uint16)
