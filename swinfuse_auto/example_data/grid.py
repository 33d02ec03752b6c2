"""Where each synthetic case's voxel grid sits relative to the phantom's anatomy.

The anatomy lives in a patient-fixed physical frame (ITK's LPS convention: +x towards the
patient's left, +y posterior, +z superior) and is described in *normalised* coordinates ``u``:
``u = (p - centre) / half_extent`` per axis, so the phantom spans roughly [-1, 1] over the
nominal field of view. A case's grid is an ordinary ITK geometry (spacing, origin, direction) laid
over that frame. Because the anatomy is fixed in physical space, a flipped or rotated direction
really does flip or rotate the voxel array, exactly as a differently stored scan would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from swinfuse_auto.io.image import Geometry

IN_PLANE_SPACING_MM = (0.7, 1.2)
SLICE_SPACING_MM = (1.5, 3.0)
#: Abdominal MR protocols: coarser in-plane, thick slices (T2 HASTE / SPIR: 5-6 mm).
MR_IN_PLANE_SPACING_MM = (1.2, 1.9)
MR_SLICE_SPACING_MM = (4.0, 6.0)
#: MR field of view relative to CT's (z, y, x): shorter along the body, wider in-plane, so the
#: anatomy fills another share of the image.
MR_FIELD_OF_VIEW = (0.85, 1.15, 1.15)
ORIENTATIONS = ("identity", "oblique", "ras")
SLAB_VOXELS = 1 << 22
MIN_AXIS_VOXELS = 8


def z_slabs(shape: tuple[int, ...], voxels: int = SLAB_VOXELS) -> Iterator[slice]:
    """Consecutive z ranges of about ``voxels`` voxels each.

    Working slab by slab bounds the temporaries of whole-volume steps to a few MB, which is what
    lets a 512x512x120 case be generated in a few hundred MB.
    """
    step = max(1, voxels // max(1, int(np.prod(shape[1:]))))
    for start in range(0, shape[0], step):
        yield slice(start, min(start + step, shape[0]))


@dataclass(frozen=True)
class CaseGrid:
    """A case's geometry plus the affine map from voxel index (ITK order) to normalised ``u``.

    ``u = matrix @ index + offset``; ``matrix`` has exact zeros wherever a voxel axis does not
    move a physical axis, which keeps the coordinate arrays of in-plane rotations 2D.
    """

    geometry: Geometry
    matrix: np.ndarray  # (3, 3) float64, rows: u_x, u_y, u_z; columns: index x, y, z
    offset: np.ndarray  # (3,) float64

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x)."""
        return self.geometry.shape_zyx

    def coordinates(self, box: tuple[slice, slice, slice] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised (u_x, u_y, u_z) of the voxels in ``box`` (array order z, y, x), float32.

        The arrays broadcast against each other instead of being full 3D: a term whose
        coefficient is zero is left out, so for an axial grid u_x and u_y are (1, Y, X) and
        u_z is (Z, 1, 1). That keeps a 512x512x120 case cheap.
        """
        box = box or tuple(slice(0, n) for n in self.shape)  # type: ignore[assignment]
        index = [np.arange(s.start, s.stop, dtype=np.float64) for s in box]  # z, y, x
        axes = (index[2].reshape(1, 1, -1), index[1].reshape(1, -1, 1),
                index[0].reshape(-1, 1, 1))  # ITK index order x, y, z
        coords = []
        for row in range(3):
            value: np.ndarray | float = self.offset[row]
            for column in range(3):
                if self.matrix[row, column] != 0.0:
                    value = value + self.matrix[row, column] * axes[column]
            coords.append(np.asarray(value, dtype=np.float32))
        return coords[0], coords[1], coords[2]

    def index_box(self, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Voxel slices (z, y, x) covering the normalised box [low, high]; None if outside."""
        corners = np.array([[low[0] if i & 1 == 0 else high[0], low[1] if i & 2 == 0 else high[1],
                             low[2] if i & 4 == 0 else high[2]] for i in range(8)])
        index = np.linalg.solve(self.matrix, (corners - self.offset).T).T  # ITK order
        size = self.geometry.size
        start = np.clip(np.floor(index.min(axis=0)).astype(int), 0, size)
        stop = np.clip(np.ceil(index.max(axis=0)).astype(int) + 1, 0, size)
        if np.any(stop <= start):
            return None
        return (slice(start[2], stop[2]), slice(start[1], stop[1]), slice(start[0], stop[0]))


def sample_spacing(rng: np.random.Generator, modality: str = "CT"
                   ) -> tuple[float, float, float]:
    """Random anisotropic (z, y, x) spacing in the range of abdominal CT or MR protocols."""
    in_plane_range, slice_range = ((MR_IN_PLANE_SPACING_MM, MR_SLICE_SPACING_MM)
                                   if modality == "MR" else
                                   (IN_PLANE_SPACING_MM, SLICE_SPACING_MM))
    in_plane = round(float(rng.uniform(*in_plane_range)), 3)
    slices = round(float(rng.uniform(*slice_range)), 3)
    return (slices, in_plane, in_plane)


def nominal_spacing() -> tuple[float, float, float]:
    """Mid-range (z, y, x) spacing; with ``shape`` it fixes the dataset's field of view."""
    return (sum(SLICE_SPACING_MM) / 2, sum(IN_PLANE_SPACING_MM) / 2, sum(IN_PLANE_SPACING_MM) / 2)


def direction_for(orientation: str, rng: np.random.Generator) -> np.ndarray:
    """Direction cosines (columns = voxel axes) for one of :data:`ORIENTATIONS`.

    "oblique" is a small rotation about z, as when the patient lies slightly turned on the
    table; "ras" flips x and y, as NIfTI files converted with a RAS convention are stored.
    Every choice keeps the slice axis along physical z, so the body stays a z-cylinder in voxels.
    """
    if orientation == "identity":
        return np.eye(3)
    if orientation == "ras":
        return np.diag([-1.0, -1.0, 1.0])
    if orientation == "oblique":
        angle = math.radians(float(rng.uniform(4.0, 12.0)) * float(rng.choice([-1.0, 1.0])))
        cos, sin = math.cos(angle), math.sin(angle)
        return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    raise ValueError(f"unknown orientation {orientation!r}; expected one of {ORIENTATIONS}")


def make_grid(spacing_zyx: tuple[float, float, float], fov_mm_zyx: np.ndarray,
              direction: np.ndarray, centre_mm: np.ndarray, grid_shift_mm: np.ndarray,
              half_extent_mm: np.ndarray) -> CaseGrid:
    """Lay a grid of the dataset's field of view, centred near the anatomy, over the phantom.

    Args:
        spacing_zyx: voxel size of this case.
        fov_mm_zyx: field of view shared by all cases; the voxel count follows from it.
        direction: 3x3 direction cosines (columns are the voxel axes x, y, z).
        centre_mm: physical position (x, y, z) of the anatomy's centre (table position).
        grid_shift_mm: how far the grid centre sits from the anatomy centre (x, y, z).
        half_extent_mm: the physical length (x, y, z) of one normalised unit.
    """
    shape_zyx = [max(MIN_AXIS_VOXELS, int(round(f / s))) for f, s in zip(fov_mm_zyx, spacing_zyx)]
    spacing = np.array(spacing_zyx[::-1], dtype=np.float64)  # ITK order
    size = np.array(shape_zyx[::-1])
    grid_centre = centre_mm + grid_shift_mm
    origin = grid_centre - direction @ (spacing * (size - 1) / 2.0)
    geometry = Geometry(tuple(int(v) for v in size),  # type: ignore[arg-type]
                        tuple(float(v) for v in spacing),  # type: ignore[arg-type]
                        tuple(round(float(v), 4) for v in origin),  # type: ignore[arg-type]
                        tuple(float(v) for v in direction.reshape(-1)))
    origin = np.array(geometry.origin)
    matrix = (direction * spacing[None, :]) / half_extent_mm[:, None]
    matrix[np.abs(matrix) < 1e-12] = 0.0
    offset = (origin - centre_mm) / half_extent_mm
    return CaseGrid(geometry, matrix, offset)
