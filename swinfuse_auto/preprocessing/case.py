"""One case from raw arrays to network-ready arrays, and the facts needed to undo it.

Training, pre-training and prediction all call :func:`preprocess_arrays`, so a case is prepared
identically everywhere. The order follows nnU-Net: crop to non-zero, normalise (statistics on the
original voxels), resample to the target spacing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from swinfuse_auto.io.image import Geometry
from swinfuse_auto.maths.crop import BBox, bbox_of, crop, nonzero_mask
from swinfuse_auto.maths.normalization import normalize
from swinfuse_auto.maths.resample import (low_resolution_axis, resample_image, resample_label,
                                          shape_for_spacing)
from swinfuse_auto.plans.schema import ConfigurationPlan, NormalizationPlan

#: Voxel coordinates kept per class for foreground oversampling: plenty for random centres,
#: small enough for a JSON sidecar.
LOCATIONS_PER_CLASS = 2000


@dataclass(frozen=True)
class CaseProperties:
    """Everything needed to map a preprocessed array back onto the raw image grid."""

    case_id: str
    geometry: Geometry  # raw image grid (channel 0)
    bbox: BBox
    shape_after_resample: tuple[int, int, int]
    modalities: tuple[str, ...]
    class_locations: dict[int, np.ndarray] = field(default_factory=dict)  # (N, 3) z, y, x

    @property
    def shape_after_crop(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in self.bbox)  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return {"case_id": self.case_id, "geometry": self.geometry.to_dict(),
                "bbox": [list(b) for b in self.bbox],
                "shape_after_crop": list(self.shape_after_crop),
                "shape_after_resample": list(self.shape_after_resample),
                "modalities": list(self.modalities),
                "class_locations": {str(k): np.asarray(v).tolist()
                                    for k, v in self.class_locations.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> CaseProperties:
        return cls(d["case_id"], Geometry.from_dict(d["geometry"]),
                   tuple(tuple(b) for b in d["bbox"]),  # type: ignore[arg-type]
                   tuple(d["shape_after_resample"]), tuple(d["modalities"]),  # type: ignore[arg-type]
                   {int(k): np.asarray(v, dtype=np.int32).reshape(-1, 3)
                    for k, v in d.get("class_locations", {}).items()})


def sample_class_locations(seg: np.ndarray, classes: list[int], seed: int
                           ) -> dict[int, np.ndarray]:
    """Up to :data:`LOCATIONS_PER_CLASS` random (z, y, x) voxels of each foreground class."""
    rng = np.random.default_rng(seed)
    result: dict[int, np.ndarray] = {}
    for value in classes:
        coords = np.argwhere(seg == value)
        if len(coords) > LOCATIONS_PER_CLASS:
            coords = coords[rng.choice(len(coords), LOCATIONS_PER_CLASS, replace=False)]
        result[value] = coords.astype(np.int32)
    return result


@dataclass
class RawArrays:
    """The raw arrays of one case, handed over to :func:`preprocess_arrays`.

    Preprocessing takes ownership and clears each field once it is no longer needed: a 512^3 CT
    in float32 is half a gigabyte, and a caller's reference would keep it alive through the
    label resampling, where the peak memory of a worker is reached.
    """

    images: np.ndarray | None  # (C, z, y, x)
    label: np.ndarray | None = None  # (z, y, x) integer

    def take_images(self) -> np.ndarray:
        images, self.images = self.images, None
        if images is None:
            raise ValueError("the images were already consumed")
        return images

    def take_label(self) -> np.ndarray | None:
        label, self.label = self.label, None
        return label


def preprocess_arrays(raw: RawArrays, geometry: Geometry, configuration: ConfigurationPlan,
                      normalization: list[NormalizationPlan]
                      ) -> tuple[np.ndarray, np.ndarray | None, BBox, tuple[int, int, int]]:
    """Crop, normalise and resample the images (and label) of one case; ``raw`` is emptied.

    Returns:
        The float32 data, the resampled label (or None), the crop box and the resampled shape.
    """
    images = raw.take_images()
    mask = nonzero_mask(images)
    box = bbox_of(mask)
    data = np.ascontiguousarray(crop(images, box), dtype=np.float32)
    del images
    data = normalize(data, normalization, crop(mask, box))
    del mask
    spacing = geometry.spacing_zyx
    new_shape = shape_for_spacing(data.shape[1:], spacing, configuration.spacing)
    axis = low_resolution_axis(spacing, configuration.spacing)
    data = resample_image(data, new_shape, axis, configuration.resampling.image_order)
    label = raw.take_label()
    seg = None
    if label is not None:
        cropped = np.ascontiguousarray(crop(label, box))
        del label
        seg = resample_label(cropped, new_shape, axis)
    return data, seg, box, new_shape
