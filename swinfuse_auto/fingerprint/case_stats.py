"""Statistics of one case, computed in a worker process (top-level functions: spawn-safe)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from swinfuse_auto.dataset.cases import Case
from swinfuse_auto.io.image import Geometry, read_image
from swinfuse_auto.preprocessing.crop import BBox, bbox_of, crop, nonzero_mask


@dataclass(frozen=True)
class CaseFingerprint:
    """What planning needs to know about one training case."""

    case_id: str
    spacing: tuple[float, float, float]  # z, y, x (mm)
    shape: tuple[int, int, int]  # z, y, x before cropping
    bbox: BBox
    class_voxels: dict[int, int]
    channel_mean: tuple[float, ...]  # foreground mean per channel
    channel_std: tuple[float, ...]

    @property
    def shape_after_crop(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in self.bbox)  # type: ignore[return-value]

    @property
    def crop_fraction(self) -> float:
        """Voxels kept by crop-to-nonzero over all voxels; low values mean a masked z-score."""
        return float(np.prod(self.shape_after_crop) / np.prod(self.shape))

    def to_dict(self) -> dict:
        return {"case_id": self.case_id, "spacing": list(self.spacing), "shape": list(self.shape),
                "bbox": [list(b) for b in self.bbox], "shape_after_crop": list(self.shape_after_crop),
                "class_voxels": {str(k): v for k, v in self.class_voxels.items()},
                "foreground_mean": list(self.channel_mean), "foreground_std": list(self.channel_std)}

    @classmethod
    def from_dict(cls, d: dict) -> CaseFingerprint:
        return cls(d["case_id"], tuple(d["spacing"]), tuple(d["shape"]),  # type: ignore[arg-type]
                   tuple(tuple(b) for b in d["bbox"]),  # type: ignore[arg-type]
                   {int(k): int(v) for k, v in d["class_voxels"].items()},
                   tuple(d["foreground_mean"]), tuple(d["foreground_std"]))


def read_case(case: Case, dtype: type | None = np.float32
              ) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Stack a case's channels to (C, z, y, x) ``dtype`` (None: as stored) and read its label,
    if any, as int16.

    Returns the geometry of channel 0, which verification has checked the others agree with.
    """
    arrays = []
    for channel in range(len(case.images)):
        array, geometry = read_image(case.channel_path(channel), dtype=dtype)
        arrays.append(array)
        if channel == 0:
            first = geometry
    label = None
    if case.label is not None:
        label = read_image(case.label, dtype=None)[0]
        label = np.rint(label).astype(np.int16) if label.dtype.kind == "f" else label.astype(np.int16)
    images = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)  # no copy for one channel
    return images, label, first


def fingerprint_case(case: Case, num_samples: int, seed: int
                     ) -> tuple[CaseFingerprint, np.ndarray]:
    """Fingerprint one case and draw a bounded sample of foreground intensities per channel.

    Foreground means labelled voxels (as nnU-Net does): those are the intensities the network
    must separate, and using them keeps air and table out of the CT clipping window.

    Returns:
        The fingerprint and a (C, n) float32 sample of foreground intensities.
    """
    images, label, geometry = read_case(case, dtype=None)  # int16 CT: half the RAM of float32
    full_shape = tuple(int(s) for s in images.shape[1:])
    box = bbox_of(nonzero_mask(images))
    images = crop(images, box)
    if label is None:
        raise ValueError(f"case {case.case_id} has no label file")
    label = crop(label, box)
    counts = np.bincount(label[label >= 0].ravel())
    foreground = label > 0
    if not foreground.any():  # a case without any labelled voxel: use the body instead
        foreground = np.ones(label.shape, dtype=bool)
    values = images[:, foreground]
    rng = np.random.default_rng(seed)
    take = min(num_samples, values.shape[1])
    sample = values[:, rng.choice(values.shape[1], take, replace=False)] if take else values
    fingerprint = CaseFingerprint(
        case.case_id, geometry.spacing_zyx, full_shape, box,  # type: ignore[arg-type]
        {int(k): int(v) for k, v in enumerate(counts) if v},
        tuple(float(v.mean()) for v in values), tuple(float(v.std()) for v in values))
    return fingerprint, sample.astype(np.float32)
