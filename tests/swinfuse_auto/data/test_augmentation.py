from __future__ import annotations

import random

import numpy as np
import pytest

from swinfuse_auto.data.augmentation import (AugmentationConfig, build_training_augmentation,
                                             build_validation_augmentation,
                                             is_anisotropic_patch, required_input_size)
from swinfuse_auto.data.intensity_augmentation import (IntensityAugmentation, apply_gin,
                                                       draw_gin_network, invert_intensity)
from swinfuse_auto.errors import ConfigError


def _image(shape: tuple[int, ...] = (2, 2, 16, 20, 24), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x.reshape(*x.shape[:2], -1), axis=-1)


def test_gin_keeps_shape_dtype_and_norm_and_changes_the_image() -> None:
    image, seg = _image(), np.zeros((2, 1, 16, 20, 24), np.int16)
    out, seg_out = IntensityAugmentation(gin_probability=1.0)(image, seg, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(_norms(out), _norms(image), rtol=1e-4)
    assert not np.allclose(out, image)
    assert seg_out is seg and not seg.any()


def test_gin_is_deterministic_given_the_rng_and_leaves_its_input_alone() -> None:
    image = _image()
    copy = image.copy()
    stage = IntensityAugmentation(gin_probability=1.0, inversion_probability=0.5)
    first, _ = stage(image, None, np.random.default_rng(3))  # type: ignore[arg-type]
    again, _ = stage(image, None, np.random.default_rng(3))  # type: ignore[arg-type]
    other, _ = stage(image, None, np.random.default_rng(4))  # type: ignore[arg-type]
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.array_equal(image, copy)


def test_a_one_by_one_gin_network_matches_its_closed_form() -> None:
    network = draw_gin_network(np.random.default_rng(0), kernel_sizes=(1,))
    x = _image((5, 6, 7))
    h = x[None]
    for i, (w, b) in enumerate(zip(network.weights, network.biases)):
        h = np.einsum("oi,izyx->ozyx", w[:, :, 0, 0, 0], h) + b[:, None, None, None]
        h = np.where(h > 0, h, 0.01 * h) if i < len(network.weights) - 1 else h
    mixed = network.alpha * h[0] + (1 - network.alpha) * x
    expected = mixed * np.linalg.norm(x) / np.linalg.norm(mixed)
    np.testing.assert_allclose(apply_gin(x, network), expected, rtol=1e-4, atol=1e-5)


def test_inversion_swaps_minimum_and_maximum() -> None:
    x = np.array([[[-1.0, 0.5, 3.0]]], np.float32)
    np.testing.assert_allclose(invert_intensity(x), [[[3.0, 1.5, -1.0]]])


def test_gin_rejects_even_kernels() -> None:
    with pytest.raises(ConfigError, match="odd kernel sizes"):
        IntensityAugmentation(kernel_sizes=(2,))


def test_input_size_covers_the_rotated_and_zoomed_patch() -> None:
    assert required_input_size((16, 24, 24), 0.0, 1.0) == (16, 24, 24)
    # a 64^2 square turned by 45 degrees spans 63 * sqrt(2) + 1 = 90.1 -> 91, margin made even
    assert required_input_size((64, 64), 180.0, 1.0) == (92, 92)
    assert required_input_size((64, 64), 0.0, 1.4) == (90, 90)
    size = required_input_size((16, 24, 32), 30.0, 1.4)
    assert all((s - p) % 2 == 0 and s > p for s, p in zip(size, (16, 24, 32)))


def test_anisotropic_patches_rotate_in_plane_only() -> None:
    assert is_anisotropic_patch((32, 128, 128)) and not is_anisotropic_patch((32, 96, 96))
    assert not is_anisotropic_patch((64, 64, 64))
    pipeline = build_training_augmentation((8, 32, 32))
    assert pipeline.crop_size((8, 32, 32))[0] == 8 and pipeline.crop_size((8, 32, 32))[1] > 32
    crop = pipeline.crop_size((8, 32, 32))
    image, seg = _image((2, 1, *crop)), np.ones((2, 1, *crop), np.int8)
    out, seg_out = pipeline(image, seg, np.random.default_rng(0))
    assert out.shape == (2, 1, 8, 32, 32) and seg_out.shape == (2, 1, 8, 32, 32)


def test_pipeline_restores_the_global_random_states() -> None:
    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    pipeline = build_training_augmentation((8, 16, 16))
    crop = pipeline.crop_size((8, 16, 16))
    pipeline(_image((2, 1, *crop)), np.zeros((2, 1, *crop), np.int8), np.random.default_rng(0))
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before


def test_validation_augmentation_is_the_identity() -> None:
    pipeline = build_validation_augmentation()
    image, seg = _image(), np.zeros((2, 1, 16, 20, 24), np.int8)
    out, seg_out = pipeline(image, seg, np.random.default_rng(0))
    assert out is image and seg_out is seg
    assert pipeline.crop_size((16, 20, 24)) == (16, 20, 24)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("gin_probability", 1.5, "probability"),
    ("scale_range", (1.4, 0.7), "low <= high"),
    ("mirror_axes", (0, 3), "mirror_axes"),
])
def test_config_rejects_invalid_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AugmentationConfig(**{field: value})  # type: ignore[arg-type]


def test_training_augmentation_rejects_a_2d_patch() -> None:
    with pytest.raises(ConfigError, match="three positive sizes"):
        build_training_augmentation((64, 64))
