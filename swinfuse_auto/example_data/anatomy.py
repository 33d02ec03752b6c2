"""An abdomen-like phantom: body wall, fat, organs, spine and aorta, rasterised on any grid.

Everything is described in the normalised anatomy frame of :mod:`.grid` (LPS; ``u`` in about
[-1, 1] over the field of view). Organs are smooth ellipsoids with a few low-frequency cosine
ripples, so their surfaces are irregular but a small network can still learn them. The phantom is
rasterised into a *tissue* map (more classes than the labels: fat, muscle, discs ...), from which
both the intensities and the label map are looked up; image and label therefore always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from swinfuse_auto.example_data.grid import CaseGrid, z_slabs


class Tissue(IntEnum):
    """Tissue classes of the phantom; intensity models give each one a value."""

    AIR = 0
    SUBCUTANEOUS_FAT = 1
    MUSCLE = 2
    VISCERA = 3
    VISCERAL_FAT = 4
    LIVER = 5
    SPLEEN = 6
    KIDNEY = 7
    BONE = 8
    DISC = 9
    AORTA = 10


ORGAN_LABELS: dict[str, int] = {"liver": 1, "spleen": 2, "kidneys": 3, "spine": 4, "aorta": 5}
"""Label values written to the label maps. Both kidneys share one label on purpose: mirroring
augmentation and the RAS-stored cases swap left and right in voxel space."""

_LABEL_OF_TISSUE = {Tissue.LIVER: 1, Tissue.SPLEEN: 2, Tissue.KIDNEY: 3, Tissue.BONE: 4,
                    Tissue.AORTA: 5}
LABEL_LUT = np.array([_LABEL_OF_TISSUE.get(t, 0) for t in Tissue], dtype=np.uint8)

# tissue, centre (x, y, z), radii, rotation about z (degrees), taper along the local x axis
_NOMINAL_BLOBS = (
    (Tissue.LIVER, (-0.36, -0.04, 0.30), (0.40, 0.46, 0.50), -10.0, -0.35),
    (Tissue.SPLEEN, (0.50, 0.20, 0.26), (0.15, 0.26, 0.28), 35.0, 0.0),
    (Tissue.KIDNEY, (-0.32, 0.28, -0.26), (0.13, 0.17, 0.30), -20.0, 0.0),
    (Tissue.KIDNEY, (0.32, 0.28, -0.14), (0.13, 0.17, 0.30), 20.0, 0.0),
)
# tissue, centre (x, y) at z = 0, radii (x, y), slope (dx/dz, dy/dz), discs; painted last
_NOMINAL_TUBES = (
    (Tissue.BONE, (0.0, 0.30), (0.14, 0.11), (0.0, 0.03), True),  # vertebral bodies
    (Tissue.BONE, (0.0, 0.44), (0.05, 0.07), (0.0, 0.03), False),  # spinous processes
    (Tissue.AORTA, (0.09, 0.09), (0.09, 0.09), (0.02, 0.0), False),
)


@dataclass(frozen=True)
class Blob:
    """A deformed ellipsoid: ``|v|^2 + ripples < 1`` in its local frame ``v``."""

    tissue: Tissue
    centre: np.ndarray  # (3,) normalised x, y, z
    radii: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3) columns are the local axes
    taper: float  # the cross-section shrinks towards +v_x when negative
    waves: np.ndarray  # (K, 3) wave vectors in the local frame
    phases: np.ndarray  # (K,)
    amplitudes: np.ndarray  # (K,)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised box that certainly holds the blob (taper and ripples included)."""
        margin = (1.0 + abs(self.taper)) * (1.0 + float(self.amplitudes.sum()))
        half = np.sqrt(((self.rotation * self.radii[None, :]) ** 2).sum(axis=1)) * margin
        return self.centre - half, self.centre + half

    def inside(self, coords: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Mask of the voxels at normalised ``coords`` (broadcasting arrays) inside the blob.

        The ripples are cosines of the *local* coordinates, so they deform the surface smoothly
        at the organ's own scale instead of adding voxel noise.
        """
        deltas = [c - np.float32(m) for c, m in zip(coords, self.centre)]
        local = []
        for axis in range(3):
            value = sum(np.float32(self.rotation[row, axis]) * deltas[row] for row in range(3)
                        if self.rotation[row, axis] != 0.0)
            local.append(value / np.float32(self.radii[axis]))
        shrink = np.maximum(1.0 + np.float32(self.taper) * local[0], np.float32(0.2))
        level = local[0] ** 2 + (local[1] ** 2 + local[2] ** 2) / shrink ** 2
        for wave, phase, amplitude in zip(self.waves, self.phases, self.amplitudes):
            argument = sum(np.float32(w) * v for w, v in zip(wave, local)) + np.float32(phase)
            level = level + np.float32(amplitude) * np.cos(argument)
        return level < 1.0


@dataclass(frozen=True)
class Tube:
    """An elliptic cylinder along z whose axis drifts linearly with z."""

    tissue: Tissue
    centre: np.ndarray  # (2,) x, y at z = 0
    radii: np.ndarray  # (2,)
    slope: np.ndarray  # (2,)
    discs: bool = False  # split into vertebrae by soft-tissue discs along z

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised box holding the tube over every z a grid can reach."""
        z_range = 1.5  # beyond any field of view the grids use
        drift = np.abs(self.slope) * z_range
        low = np.append(self.centre - self.radii - drift, -z_range)
        high = np.append(self.centre + self.radii + drift, z_range)
        return low, high

    def inside(self, coords: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Mask of the voxels at normalised ``coords`` inside the tube."""
        ux, uy, uz = coords
        dx = (ux - np.float32(self.centre[0]) - np.float32(self.slope[0]) * uz)
        dy = (uy - np.float32(self.centre[1]) - np.float32(self.slope[1]) * uz)
        return (dx / np.float32(self.radii[0])) ** 2 + (dy / np.float32(self.radii[1])) ** 2 < 1.0


@dataclass(frozen=True)
class Anatomy:
    """One subject: body shape, visceral fat pattern, organs and the spacing of the discs."""

    body_axes: np.ndarray  # (2,) semi-axes x, y of the skin outline
    body_centre: np.ndarray  # (2,)
    fat_thickness: float
    muscle_thickness: float
    girth_ripple: tuple[float, float, float]  # amplitude, frequency, phase of the outline along z
    fat_waves: np.ndarray  # (K, 6): frequencies x, y, z and phases x, y, z
    organs: tuple[Blob | Tube, ...]
    disc_period: float
    disc_phase: float


def _rotation(z_degrees: float, x_degrees: float) -> np.ndarray:
    """Organ orientation: mostly about z (axial plane), with a small tilt about x."""
    az, ax = math.radians(z_degrees), math.radians(x_degrees)
    about_z = np.array([[math.cos(az), -math.sin(az), 0.0], [math.sin(az), math.cos(az), 0.0],
                        [0.0, 0.0, 1.0]])
    about_x = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(ax), -math.sin(ax)],
                        [0.0, math.sin(ax), math.cos(ax)]])
    return about_z @ about_x


def _sample_blob(rng: np.random.Generator, nominal: tuple, scale: float) -> Blob:
    """Jitter one nominal organ: position by a few % of the field, size by about 10 %."""
    tissue, centre, radii, z_degrees, taper = nominal
    shift = rng.uniform(-1.0, 1.0, 3) * np.array([0.035, 0.035, 0.05])
    directions = rng.normal(size=(3, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return Blob(tissue=tissue,
                centre=(np.array(centre) + shift) * scale,
                radii=np.array(radii) * rng.uniform(0.9, 1.1, 3) * scale,
                rotation=_rotation(z_degrees + rng.uniform(-8.0, 8.0), rng.uniform(-6.0, 6.0)),
                taper=float(taper),
                waves=directions * rng.uniform(1.5, 3.0, (3, 1)),
                phases=rng.uniform(0.0, 2.0 * math.pi, 3),
                amplitudes=rng.uniform(0.03, 0.08, 3))


def _sample_tube(rng: np.random.Generator, nominal: tuple, scale: float) -> Tube:
    """Jitter a tube less than an organ: spine and aorta must keep touching."""
    tissue, centre, radii, slope, discs = nominal
    return Tube(tissue=tissue,
                centre=(np.array(centre) + rng.uniform(-0.015, 0.015, 2)) * scale,
                radii=np.array(radii) * rng.uniform(0.92, 1.08, 2) * scale,
                slope=np.array(slope) + rng.uniform(-0.02, 0.02, 2), discs=discs)


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """A new subject: the nominal phantom with its size, shape and organs jittered.

    The jitter is small enough that every organ stays inside the field of view and touching
    organs (liver and right kidney, aorta and spine) keep touching, but large enough that the
    cases of a cross-validation split differ.
    """
    scale = float(rng.uniform(0.92, 1.05))
    organs = [_sample_blob(rng, nominal, scale) for nominal in _NOMINAL_BLOBS]
    organs += [_sample_tube(rng, nominal, scale) for nominal in _NOMINAL_TUBES]
    return Anatomy(body_axes=np.array([0.88, 0.68]) * rng.uniform(0.95, 1.05, 2) * scale,
                   body_centre=rng.uniform(-0.02, 0.02, 2),
                   fat_thickness=float(rng.uniform(0.07, 0.12)),
                   muscle_thickness=float(rng.uniform(0.04, 0.06)),
                   girth_ripple=(float(rng.uniform(0.01, 0.04)), float(rng.uniform(1.0, 2.5)),
                                 float(rng.uniform(0.0, 2.0 * math.pi))),
                   fat_waves=np.concatenate([rng.uniform(4.0, 9.0, (3, 3)),
                                             rng.uniform(0.0, 2.0 * math.pi, (3, 3))], axis=1),
                   organs=tuple(organs),
                   disc_period=float(rng.uniform(0.40, 0.50)) * scale,
                   disc_phase=float(rng.uniform(0.0, 1.0)))


def _body_slab(anatomy: Anatomy, coords: tuple[np.ndarray, np.ndarray, np.ndarray],
               tissue: np.ndarray) -> np.ndarray:
    """Paint skin outline, fat, muscle wall and visceral fat; returns the abdominal cavity."""
    ux, uy, uz = coords
    amplitude, frequency, phase = anatomy.girth_ripple
    girth = np.float32(1.0) + np.float32(amplitude) * np.cos(np.float32(frequency) * uz
                                                           + np.float32(phase))
    dx, dy = ux - np.float32(anatomy.body_centre[0]), uy - np.float32(anatomy.body_centre[1])
    inset = (0.0, anatomy.fat_thickness, anatomy.fat_thickness + anatomy.muscle_thickness)
    layers = (Tissue.SUBCUTANEOUS_FAT, Tissue.MUSCLE, Tissue.VISCERA)
    for depth, layer in zip(inset, layers):
        ax, ay = (np.float32(a - depth) for a in anatomy.body_axes)
        inside = (dx / ax) ** 2 + (dy / ay) ** 2 < girth ** 2
        tissue[inside] = layer
    texture = np.zeros(tissue.shape, dtype=np.float32)
    for fx, fy, fz, px, py, pz in anatomy.fat_waves:
        texture += (np.cos(np.float32(fx) * ux + np.float32(px))
                    * np.cos(np.float32(fy) * uy + np.float32(py))
                    * np.cos(np.float32(fz) * uz + np.float32(pz)))
    tissue[inside & (texture > 0.85)] = Tissue.VISCERAL_FAT
    return inside  # the innermost layer: the cavity


def _paint_organ(organ: Blob | Tube, anatomy: Anatomy,
                 coords: tuple[np.ndarray, np.ndarray, np.ndarray], tissue: np.ndarray,
                 cavity: np.ndarray) -> None:
    """Paint ``organ`` into a block of the tissue map (clipped to the cavity)."""
    inside = organ.inside(coords) & cavity
    if isinstance(organ, Tube) and organ.discs:
        disc = np.mod(coords[2] / np.float32(anatomy.disc_period)
                      + np.float32(anatomy.disc_phase), 1.0) < 0.2
        tissue[inside & disc] = Tissue.DISC
        inside &= ~disc
    tissue[inside] = organ.tissue


def rasterise(anatomy: Anatomy, grid: CaseGrid) -> np.ndarray:
    """The tissue map (uint8, array order z, y, x) of ``anatomy`` sampled at the voxel centres.

    Organs are clipped to the abdominal cavity, so the liver and spleen flatten against the
    body wall instead of poking through it. Each organ is evaluated only inside its bounding
    box, slab by slab, which keeps a 512x512x120 grid at a few seconds and a few hundred MB.
    """
    tissue = np.zeros(grid.shape, dtype=np.uint8)
    cavity = np.empty(grid.shape, dtype=bool)
    for slab in z_slabs(grid.shape):
        box = (slab, slice(0, grid.shape[1]), slice(0, grid.shape[2]))
        cavity[box] = _body_slab(anatomy, grid.coordinates(box), tissue[box])
    for organ in anatomy.organs:
        box = grid.index_box(*organ.bounds())
        if box is None:
            continue
        z0 = box[0].start
        for slab in z_slabs((box[0].stop - z0, box[1].stop - box[1].start,
                             box[2].stop - box[2].start)):
            block = (slice(z0 + slab.start, z0 + slab.stop), box[1], box[2])
            _paint_organ(organ, anatomy, grid.coordinates(block), tissue[block], cavity[block])
    return tissue


def label_map(tissue: np.ndarray) -> np.ndarray:
    """Segmentation labels (values of :data:`ORGAN_LABELS`) for a tissue map."""
    return LABEL_LUT[tissue]
