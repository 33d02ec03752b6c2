"""SimpleITK reading and writing that keeps the physical geometry next to the voxel array.

Arrays are in SimpleITK's numpy order (z, y, x). :class:`Geometry` keeps spacing, origin and
direction in ITK order (x, y, z) because that is what is written back to disk; use
``spacing_zyx`` when pairing a spacing with an array axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from swinfuse_auto.errors import DatasetError
from swinfuse_auto.io import nifti_scan
from swinfuse_auto.io.atomic import atomic_path

SUPPORTED_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha")


@dataclass(frozen=True)
class Geometry:
    """Physical placement of a 3D image (ITK order: x, y, z)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 9 values, row-major

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Spacing in array-axis order."""
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """Array shape this geometry describes."""
        return (self.size[2], self.size[1], self.size[0])

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        return {"size": list(self.size), "spacing": list(self.spacing),
                "origin": list(self.origin), "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, data: dict) -> Geometry:
        return cls(tuple(int(v) for v in data["size"]),  # type: ignore[arg-type]
                   tuple(float(v) for v in data["spacing"]),  # type: ignore[arg-type]
                   tuple(float(v) for v in data["origin"]),  # type: ignore[arg-type]
                   tuple(float(v) for v in data["direction"]))

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()),  # type: ignore[arg-type]
                   tuple(image.GetOrigin()), tuple(image.GetDirection()))

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def mismatch(self, other: Geometry, rtol: float = 1e-3, atol_mm: float = 1e-3) -> list[str]:
        """Names of the properties that differ beyond tolerance ('shape', 'spacing', ...).

        The tolerances absorb float rounding from NIfTI's qform/sform storage; anything larger
        is a real misregistration that would silently shift labels against images.
        """
        diffs = []
        if self.size != other.size:
            diffs.append("shape")
        if not np.allclose(self.spacing, other.spacing, rtol=rtol, atol=0):
            diffs.append("spacing")
        origin_tol = atol_mm + rtol * float(np.max(np.abs(self.spacing)))
        if not np.allclose(self.origin, other.origin, rtol=0, atol=origin_tol):
            diffs.append("origin")
        if not np.allclose(self.direction, other.direction, rtol=0, atol=rtol):
            diffs.append("direction")
        return diffs


def _read_sitk(path: Path) -> sitk.Image:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} does not exist.")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise DatasetError(f"{path} could not be read ({first}). The file is corrupt or not a "
                           f"supported image ({', '.join(SUPPORTED_ENDINGS)}); re-export it.") from None


def read_geometry(path: Path) -> Geometry:
    """Geometry from the header only (no voxel data), for cheap checks on many files."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise DatasetError(f"{path} could not be read: corrupt or unsupported header. "
                           "Re-export the file as NIfTI.") from None
    if reader.GetDimension() != 3:
        raise DatasetError(f"{path} is {reader.GetDimension()}D but every image must be 3D. "
                           "Split 4D series into one file per channel (CASE_0000, CASE_0001, ...).")
    return Geometry(tuple(reader.GetSize()), tuple(reader.GetSpacing()),  # type: ignore[arg-type]
                    tuple(reader.GetOrigin()), tuple(reader.GetDirection()))


def read_image(path: Path, dtype: type | None = np.float32) -> tuple[np.ndarray, Geometry]:
    """Read a 3D scalar image as a (z, y, x) array plus its geometry.

    Raises:
        DatasetError: missing, unreadable, non-3D or multi-component file (message names it).
    """
    image = _read_sitk(path)
    problem = nifti_scan.truncation(Path(path))  # SimpleITK reads a cut-off .nii.gz silently
    if problem:
        raise DatasetError(f"{path} is truncated or corrupt: {problem}. Copy or re-export it.")
    if image.GetDimension() != 3:
        raise DatasetError(f"{path} is {image.GetDimension()}D but every image must be 3D. "
                           "Split 4D series into one file per channel (CASE_0000, CASE_0001, ...).")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DatasetError(f"{path} has {image.GetNumberOfComponentsPerPixel()} components per "
                           "voxel (RGB or vector image); save each channel as its own scalar file.")
    view = sitk.GetArrayViewFromImage(image)  # no copy: convert (or copy) once, below
    array = view.astype(dtype) if dtype is not None and view.dtype != dtype else np.array(view)
    del view
    return array, Geometry.of(image)


def write_image(array: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write a (z, y, x) array with ``geometry``, atomically (temp file, then rename)."""
    if tuple(array.shape) != geometry.shape_zyx:
        raise ValueError(f"array shape {array.shape} does not match geometry {geometry.shape_zyx}")
    image = geometry.apply_to(sitk.GetImageFromArray(array))
    with atomic_path(Path(path)) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
