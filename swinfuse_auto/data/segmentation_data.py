"""Training batches for segmentation: nnU-Net's patch sampling, then augmentation.

A :class:`SegmentationBatches` is the ``make_batch`` of
:func:`swinfuse_auto.data.step_loader.step_batches`: a picklable callable from a
``numpy.random.Generator`` to a batch, so the whole batch (cases, crops, augmentation) is a pure
function of (seed, rank, step) and a resumed run sees exactly the batches it would have seen.

Sampling follows nnU-Net v2:

* cases are drawn uniformly, with replacement;
* the last ``B - round(B * (1 - p))`` samples of a batch (p = ``foreground_oversampling``; for
  p = 0.33: 1 of 2, 1 of 3, 3 of 9) are centred on a stored voxel of a class drawn uniformly among
  the foreground classes present in that case, so small structures are seen although they fill
  little of the volume. With ``B = 1`` the single sample is forced with probability p, since the
  rule would otherwise never force it. A case without foreground gets a random crop;
* the patch stays inside the image where the image is larger, and the image lies at a random place
  inside the patch where it is smaller; outside the image, images are padded with 0 (the mean of a
  normalised image) and labels with background 0, as nnU-Net's loaders end up doing. There is no
  ignore label for padding: the loss treats padding as background.

With spatial augmentation, a crop larger than the patch and centred on it is cut first
(:meth:`AugmentationPipeline.crop_size`), so rotation and zoom-out see real image, not padding,
around the patch, and the foreground voxel stays at the patch centre.

An input scaling other than the plan's (:mod:`swinfuse_auto.preprocessing.input_scaling`) is
computed once per case from the whole volume, exactly as prediction computes it, and applied to
each crop; padding stays 0 in the scaled values, as prediction pads the scaled volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from swinfuse_auto.data.augmentation import AugmentationPipeline
from swinfuse_auto.data.cropping import crop_padded
from swinfuse_auto.errors import ConfigError, PreprocessingError
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.preprocessing.case import CaseProperties
from swinfuse_auto.preprocessing.input_scaling import apply_scaling, scaling_parameters


def foreground_sample_count(batch_size: int, fraction: float, rng: np.random.Generator) -> int:
    """How many samples of a batch (the last ones) are centred on foreground.

    nnU-Net's ``_oversample_last_XX_percent`` rule for ``batch_size >= 2``; a Bernoulli draw for
    a batch of one, where that rule would never oversample.
    """
    if batch_size == 1:
        return int(rng.uniform() < fraction)
    return batch_size - round(batch_size * (1.0 - fraction))


def patch_start(shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator,
                center: Sequence[int] | None = None) -> list[int]:
    """Start of a patch: inside the image where it fits, around the image where it does not.

    Along each axis the start ranges over ``[min(0, size - p), max(0, size - p)]``; with
    ``center`` it is the start that centres the patch on that voxel, clipped to that range.
    """
    starts = []
    for axis, (size, p) in enumerate(zip(shape, patch)):
        low, high = min(0, size - p), max(0, size - p)
        if center is None:
            starts.append(int(rng.integers(low, high + 1)))
        else:
            starts.append(int(np.clip(int(center[axis]) - p // 2, low, high)))
    return starts


def foreground_voxel(locations: dict[int, np.ndarray], rng: np.random.Generator
                     ) -> np.ndarray | None:
    """A stored (z, y, x) voxel of a class drawn uniformly among ``locations``; None if empty."""
    classes = sorted(locations)
    if not classes:
        return None
    voxels = locations[classes[int(rng.integers(len(classes)))]]
    return voxels[int(rng.integers(len(voxels)))]


def foreground_locations(properties: CaseProperties) -> dict[int, np.ndarray]:
    """The stored voxels of each foreground class present in a case, as (N, 3) int32 arrays."""
    return {c: np.asarray(v, dtype=np.int32).reshape(-1, 3)
            for c, v in properties.class_locations.items() if c > 0 and len(v)}


_Case = tuple[np.ndarray, np.ndarray, dict[int, np.ndarray], np.ndarray | None]


class SegmentationBatches:
    """Callable ``rng -> {"image": (B, C, *patch) float32, "target": (B, 1, *patch) int64}``.

    Args:
        store: the preprocessed cases (memory-mapped, so only the crop is read).
        case_ids: the cases to sample from (the fold's training cases).
        patch_size: (z, y, x) of the returned patches.
        batch_size: samples per batch.
        foreground_oversampling: fraction of each batch centred on foreground (module docstring).
        augmentation: applied to the whole batch; None for plain crops.
        input_scaling: registered input scaling applied to each case ("plan": none).

    Raises:
        ConfigError: for an empty case list, a bad patch or batch size, a fraction outside
            [0, 1], or an augmentation built for another patch size.

    Example:
        >>> batches = SegmentationBatches(store, split.train, (64, 64, 64), 2,
        ...                               augmentation=build_training_augmentation((64, 64, 64)))
        >>> batch = next(step_batches(batches, start_step=0, seed=1))
    """

    def __init__(self, store: CaseStore, case_ids: Sequence[str], patch_size: Sequence[int],
                 batch_size: int, foreground_oversampling: float = 0.33,
                 augmentation: AugmentationPipeline | None = None,
                 input_scaling: str = "plan") -> None:
        self.patch_size = tuple(int(p) for p in patch_size)
        if not case_ids:
            raise ConfigError(f"No training cases given for the batches from {store.folder}; "
                              "check the fold's split in splits.json.")
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ConfigError(f"patch_size: expected three positive sizes (z, y, x), found "
                              f"{list(patch_size)}.")
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected at least 1, found {batch_size}.")
        if not 0.0 <= foreground_oversampling <= 1.0:
            raise ConfigError(f"foreground_oversampling: expected a fraction in [0, 1], found "
                              f"{foreground_oversampling}.")
        self.store = store
        self.case_ids = list(case_ids)
        self.batch_size = batch_size
        self.foreground_oversampling = foreground_oversampling
        self.augmentation = augmentation
        self.input_scaling = input_scaling
        self.crop_size = (augmentation.crop_size(self.patch_size) if augmentation is not None
                          else self.patch_size)
        self._cases: dict[str, _Case] = {}

    def __getstate__(self) -> dict[str, Any]:
        # worker processes open their own memory maps; never ship arrays through a pipe
        return {**self.__dict__, "_cases": {}}

    def _case(self, case_id: str) -> _Case:
        """Memory maps and foreground voxels of a case, kept per process.

        Parsing a case's JSON (thousands of stored voxels per class) costs tens of milliseconds,
        more than cropping, so it is done once per case and process.
        """
        if case_id not in self._cases:
            data, seg, properties = self.store.load(case_id)
            if seg is None:
                raise PreprocessingError(
                    f"Case {case_id} in {self.store.folder} has no segmentation "
                    f"({self.store.seg_path(case_id).name} is missing), so it cannot be used "
                    "for training. Re-run plan_and_preprocess.")
            scaling = (None if self.input_scaling == "plan"
                       else scaling_parameters(data, self.input_scaling))
            self._cases[case_id] = (data, seg, foreground_locations(properties), scaling)
        return self._cases[case_id]

    def _sample(self, case_id: str, foreground: bool, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
        """Crop of ``crop_size`` around a patch position drawn as in the module docstring."""
        data, seg, locations, scaling = self._case(case_id)
        center = foreground_voxel(locations, rng) if foreground else None
        start = patch_start(data.shape[1:], self.patch_size, rng, center)
        start = [s - (c - p) // 2 for s, c, p in zip(start, self.crop_size, self.patch_size)]
        label = crop_padded(seg, start, self.crop_size)
        if scaling is None:
            return crop_padded(data, start, self.crop_size), label
        image = apply_scaling(crop_padded(data, start, self.crop_size, fill=np.nan), scaling)
        return np.nan_to_num(image, copy=False, nan=0.0), label

    def __call__(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        forced = foreground_sample_count(self.batch_size, self.foreground_oversampling, rng)
        images, labels = [], []
        for index in range(self.batch_size):
            case_id = self.case_ids[int(rng.integers(len(self.case_ids)))]
            image, label = self._sample(case_id, index >= self.batch_size - forced, rng)
            images.append(image)
            labels.append(label)
        image = np.stack(images).astype(np.float32, copy=False)
        seg = np.stack(labels)[:, None]  # kept integer: labels are found faster by hashing
        if self.augmentation is not None:
            image, seg = self.augmentation(image, seg, rng)
        return {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                "target": torch.from_numpy(seg.astype(np.int64))}
