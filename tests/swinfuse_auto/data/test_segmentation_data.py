from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from swinfuse_auto.data.augmentation import AugmentationConfig, build_training_augmentation
from swinfuse_auto.data.segmentation_data import SegmentationBatches, foreground_sample_count
from swinfuse_auto.data.step_loader import step_batches
from swinfuse_auto.errors import ConfigError, PreprocessingError
from swinfuse_auto.io.image import Geometry
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.preprocessing.case import CaseProperties, sample_class_locations

SHAPE = (40, 56, 56)
PATCH = (16, 24, 24)
NO_INTENSITY = AugmentationConfig(noise_probability=0, blur_probability=0,
                                  brightness_probability=0, contrast_probability=0,
                                  low_resolution_probability=0, gamma_probability=0,
                                  gamma_inverted_probability=0, gin_probability=0)
SPATIAL_ONLY = replace(NO_INTENSITY, rotation_probability=1.0, scale_probability=1.0,
                       mirror_axes=())
MIRROR_ONLY = replace(NO_INTENSITY, rotation_probability=0, scale_probability=0)


def _balls(shape: tuple[int, int, int]) -> np.ndarray:
    """Class 1 and class 2 balls (radius 4) far enough inside that centred patches fit."""
    seg = np.zeros(shape, np.int8)
    zz, yy, xx = np.indices(shape)
    for label, (z, y, x) in ((1, (14, 20, 20)), (2, (26, 36, 36))):
        seg[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= 16] = label
    return seg


def _slab(shape: tuple[int, int, int]) -> np.ndarray:
    seg = np.zeros(shape, np.int8)
    seg[8:24, 12:40, 12:40] = 1
    return seg


def _store(folder: Path, make_seg: Callable[[tuple[int, int, int]], np.ndarray] = _balls,
           shapes: tuple[tuple[int, int, int], ...] = (SHAPE, SHAPE), channels: int = 1,
           noise: float = 0.0) -> CaseStore:
    """Cases whose image is label * 100 (plus optional noise), so alignment is visible."""
    store = CaseStore(folder)
    rng = np.random.default_rng(0)
    for i, shape in enumerate(shapes):
        seg = make_seg(shape)
        data = np.repeat(seg[None] * 100.0, channels, axis=0)
        data += noise * rng.standard_normal(data.shape)
        geometry = Geometry(shape[::-1], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
                            (1, 0, 0, 0, 1, 0, 0, 0, 1))
        properties = CaseProperties(f"case_{i}", geometry, tuple((0, s) for s in shape),
                                    shape, ("CT",) * channels,
                                    sample_class_locations(seg, [1, 2], seed=i))
        store.write(properties, data.astype(np.float32), seg, "digest")
    return store


def _centre(target: torch.Tensor) -> torch.Tensor:
    """The central 3^3 voxels of each sample of a (B, 1, z, y, x) target."""
    z, y, x = (s // 2 for s in target.shape[2:])
    return target[:, 0, z - 1:z + 2, y - 1:y + 2, x - 1:x + 2]


@pytest.mark.parametrize("patch", [PATCH, (8, 40, 40), (24, 16, 32)])
def test_batches_have_the_patch_shape_dtypes_and_label_set(tmp_path: Path,
                                                           patch: tuple[int, int, int]) -> None:
    store = _store(tmp_path, channels=2, noise=1.0)
    batches = SegmentationBatches(store, store.case_ids(), patch, 3,
                                  augmentation=build_training_augmentation(patch))
    batch = batches(np.random.default_rng(0))
    assert batch["image"].shape == (3, 2, *patch) and batch["image"].dtype == torch.float32
    assert batch["target"].shape == (3, 1, *patch) and batch["target"].dtype == torch.int64
    assert torch.isfinite(batch["image"]).all()
    assert set(batch["target"].unique().tolist()) <= {0, 1, 2}


def test_a_case_smaller_than_the_patch_is_padded_with_zeros(tmp_path: Path) -> None:
    store = _store(tmp_path, shapes=((6, 10, 10),), make_seg=lambda s: np.ones(s, np.int8))
    batch = SegmentationBatches(store, ["case_0"], PATCH, 2)(np.random.default_rng(0))
    assert batch["image"].shape == (2, 1, *PATCH)
    # the whole case lies inside the patch: every voxel once, zeros around it
    assert batch["target"].sum().item() == 2 * 6 * 10 * 10
    assert torch.equal(batch["image"], batch["target"].float() * 100)


def test_full_oversampling_centres_every_patch_on_foreground(tmp_path: Path) -> None:
    store = _store(tmp_path)
    augmentation = build_training_augmentation(PATCH, replace(SPATIAL_ONLY, mirror_axes=(0, 1, 2)))
    batches = SegmentationBatches(store, store.case_ids(), PATCH, 4, 1.0, augmentation)
    for seed in range(4):
        centre = _centre(batches(np.random.default_rng(seed))["target"])
        assert (centre.flatten(1) > 0).any(dim=1).all()


def test_without_oversampling_foreground_is_hit_at_chance(tmp_path: Path) -> None:
    store = _store(tmp_path, make_seg=_slab)
    batches = SegmentationBatches(store, store.case_ids(), PATCH, 10, 0.0)
    centres = [batches(np.random.default_rng(s))["target"][:, 0, 8, 12, 12] for s in range(30)]
    hit_rate = torch.cat(centres).float().mean().item()
    # patch centres are uniform over z 8..32, y and x 12..44; the slab holds 16 * 28 * 28 of them
    assert hit_rate == pytest.approx(16 / 25 * (28 / 33) ** 2, abs=0.1)


@pytest.mark.parametrize(("batch_size", "fraction", "expected"),
                         [(2, 0.33, 1), (3, 0.33, 1), (9, 0.33, 3), (4, 0.0, 0), (4, 1.0, 4)])
def test_foreground_count_follows_nnunet(batch_size: int, fraction: float, expected: int) -> None:
    assert foreground_sample_count(batch_size, fraction, np.random.default_rng(0)) == expected


def test_a_batch_of_one_is_oversampled_with_the_given_probability() -> None:
    rng = np.random.default_rng(0)
    draws = [foreground_sample_count(1, 0.33, rng) for _ in range(2000)]
    assert np.mean(draws) == pytest.approx(0.33, abs=0.04)


def test_batches_are_a_pure_function_of_the_rng(tmp_path: Path) -> None:
    store = _store(tmp_path, noise=1.0)
    config = AugmentationConfig(rotation_probability=0.5, gin_probability=0.5,
                                inversion_probability=0.5)
    batches = SegmentationBatches(store, store.case_ids(), PATCH, 4,
                                  augmentation=build_training_augmentation(PATCH, config))
    first, again = (batches(np.random.default_rng(7)) for _ in range(2))
    other = batches(np.random.default_rng(8))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["image"], other["image"])


def test_spatial_augmentation_keeps_labels_integer_and_aligned(tmp_path: Path) -> None:
    store = _store(tmp_path)
    augmentation = build_training_augmentation(PATCH, SPATIAL_ONLY)
    batches = SegmentationBatches(store, store.case_ids(), PATCH, 4, 1.0, augmentation)
    batch = batches(np.random.default_rng(3))
    assert set(batch["target"].unique().tolist()) <= {0, 1, 2}
    plain = SegmentationBatches(store, store.case_ids(), PATCH, 4, 1.0)(np.random.default_rng(3))
    assert not torch.equal(batch["target"], plain["target"])  # something was rotated or scaled
    agreement = (torch.round(batch["image"] / 100) == batch["target"]).float().mean()
    assert agreement > 0.97  # cubic image vs linear label interpolation differ at edges only


def test_mirroring_flips_image_and_label_together(tmp_path: Path) -> None:
    store = _store(tmp_path)
    mirrored = SegmentationBatches(store, store.case_ids(), PATCH, 4, 1.0,
                                   build_training_augmentation(PATCH, MIRROR_ONLY))
    plain = SegmentationBatches(store, store.case_ids(), PATCH, 4, 1.0)
    batch, reference = mirrored(np.random.default_rng(1)), plain(np.random.default_rng(1))
    assert torch.equal(batch["image"], batch["target"].float() * 100)
    assert not torch.equal(batch["target"], reference["target"])


def test_batches_pickle_and_match_across_worker_processes(tmp_path: Path) -> None:
    store = _store(tmp_path, noise=1.0)
    batches = SegmentationBatches(store, store.case_ids(), PATCH, 2,
                                  augmentation=build_training_augmentation(PATCH))
    batches(np.random.default_rng(0))  # opens memory maps, which must not be pickled
    payload = pickle.dumps(batches)
    assert len(payload) < 20_000
    restored = pickle.loads(payload)
    serial = list(islice(step_batches(restored, start_step=0, seed=1, num_workers=0), 3))
    loader = step_batches(batches, start_step=0, seed=1, num_workers=2)
    parallel = list(islice(loader, 3))
    del loader
    for a, b in zip(serial, parallel):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])


def test_invalid_arguments_raise_config_errors(tmp_path: Path) -> None:
    store = _store(tmp_path, shapes=(SHAPE,))
    with pytest.raises(ConfigError, match="foreground_oversampling"):
        SegmentationBatches(store, ["case_0"], PATCH, 2, foreground_oversampling=1.5)
    with pytest.raises(ConfigError, match="No training cases"):
        SegmentationBatches(store, [], PATCH, 2)
    with pytest.raises(ConfigError, match="returns patches of"):
        SegmentationBatches(store, ["case_0"], PATCH, 2,
                            augmentation=build_training_augmentation((16, 16, 16)))


def test_a_case_without_segmentation_is_reported(tmp_path: Path) -> None:
    store = _store(tmp_path, shapes=(SHAPE,))
    store.seg_path("case_0").unlink()
    with pytest.raises(PreprocessingError, match="case_0_seg.npy"):
        SegmentationBatches(store, ["case_0"], PATCH, 1)(np.random.default_rng(0))
