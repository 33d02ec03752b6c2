"""Class-aware location-scale augmentation, GIN with IPA, and the per-image input scaling."""

from __future__ import annotations

import numpy as np
import pytest

from swinfuse_auto.data.augmentation import AugmentationConfig, build_training_augmentation
from swinfuse_auto.data.intensity_augmentation import (IntensityAugmentation, apply_ipa,
                                                       draw_gin_network, draw_smooth_field)
from swinfuse_auto.data.location_scale import (TURNING_CONTROLS, LocationScaleAugmentation,
                                               class_location_scale, draw_curve,
                                               soft_class_weights)
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.preprocessing.input_scaling import apply_scaling, scaling_parameters


def _blocks() -> tuple[np.ndarray, np.ndarray]:
    """A (1, 1, 16, 24, 24) image of one intensity (0.5) with three labelled blocks."""
    seg = np.zeros((1, 1, 16, 24, 24), dtype=np.int16)
    seg[0, 0, 2:8, 2:10, 2:10] = 1
    seg[0, 0, 8:14, 12:20, 2:10] = 2
    seg[0, 0, 2:14, 2:20, 14:22] = 3
    image = np.full(seg.shape, 0.5, dtype=np.float32)
    image += np.linspace(0, 0.2, 24, dtype=np.float32)  # a gradient, so curves have a range
    return image, seg


def _core_means(image: np.ndarray, seg: np.ndarray) -> dict[int, float]:
    """Mean intensity of each class away from the blended boundaries."""
    from scipy import ndimage

    result = {}
    for value in np.unique(seg):
        core = ndimage.binary_erosion(seg[0, 0] == value, iterations=2)
        result[int(value)] = float(image[0, 0][core].mean())
    return result


def test_classes_get_different_curves_and_labels_are_untouched() -> None:
    image, seg = _blocks()
    stage = LocationScaleAugmentation(probability=1.0, class_aware_probability=1.0)
    before = seg.copy()
    outs = [stage(image.copy(), seg, np.random.default_rng(seed))[0] for seed in range(20)]
    assert np.array_equal(seg, before)  # the label is read, never written
    orders, all_distinct = set(), 0
    for out in outs:
        means = [m for _, m in sorted(_core_means(out, seg).items())]
        gaps = np.abs(np.subtract.outer(means, means))[np.triu_indices(len(means), 1)]
        all_distinct += int(gaps.min() > 1e-3)  # one input intensity, a value per class
        orders.add(tuple(np.argsort(means)))
    assert all_distinct >= 18
    # the same input intensity ends up in many different class orders: intensity is no cue
    assert len(orders) >= 8


def test_same_seed_same_result_other_seed_differs() -> None:
    image, seg = _blocks()
    stage = LocationScaleAugmentation(probability=1.0)
    first = stage(image.copy(), seg, np.random.default_rng(3))[0]
    again = stage(image.copy(), seg, np.random.default_rng(3))[0]
    other = stage(image.copy(), seg, np.random.default_rng(4))[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_class_curves_can_turn_and_the_global_curve_keeps_the_order() -> None:
    rng = np.random.default_rng(0)
    slopes = [np.sign(np.diff(draw_curve(rng, controls_range=TURNING_CONTROLS).y))
              for _ in range(200)]
    assert any((s > 0).any() and (s < 0).any() for s in slopes)  # rises and falls
    assert any((s < 0).all() for s in slopes) and any((s > 0).all() for s in slopes)
    for _ in range(200):  # global curves: increasing or (inverted) decreasing, never both
        steps = np.diff(draw_curve(rng).y)
        assert (steps >= -1e-9).all() or (steps <= 1e-9).all()


def test_class_blending_is_smooth_at_boundaries() -> None:
    _, seg = _blocks()
    weights = soft_class_weights(seg[0, 0], [0, 1, 2, 3], sigma=1.0)
    assert np.allclose(weights.sum(0), 1.0, atol=1e-5)
    image = np.full(seg.shape[2:], 0.6, dtype=np.float32)
    out = class_location_scale(image, seg[0, 0], np.random.default_rng(1))
    hard_steps = np.abs(np.diff(out, axis=2)).max()
    jump = abs(_core_means(out[None, None], seg)[1] - _core_means(out[None, None], seg)[0])
    assert hard_steps < 0.8 * jump  # the boundary is a ramp over voxels, not one step


def test_location_scale_is_switchable_through_the_config() -> None:
    off = build_training_augmentation((16, 32, 32), AugmentationConfig())
    on = build_training_augmentation((16, 32, 32),
                                     AugmentationConfig(location_scale_probability=0.5))
    assert not any(isinstance(s, LocationScaleAugmentation) for s in off.stages)
    assert any(isinstance(s, LocationScaleAugmentation) for s in on.stages)
    with pytest.raises(ConfigError, match="location_scale_probability"):
        AugmentationConfig(location_scale_probability=1.5)


def test_ipa_blends_two_gin_outputs_through_a_smooth_field() -> None:
    rng = np.random.default_rng(0)
    image = np.random.default_rng(1).normal(size=(12, 20, 20)).astype(np.float32)
    first, second = draw_gin_network(rng), draw_gin_network(rng)
    field = draw_smooth_field(image.shape, rng)
    assert field.min() >= 0 and field.max() <= 1
    assert np.abs(np.diff(field, axis=2)).max() < 0.2  # slowly varying
    mixed = apply_ipa(image, first, second, field)
    ones, zeros = np.ones_like(field), np.zeros_like(field)
    from swinfuse_auto.data.intensity_augmentation import apply_gin

    assert np.allclose(apply_ipa(image, first, second, ones), apply_gin(image, first), atol=1e-5)
    assert np.allclose(apply_ipa(image, first, second, zeros), apply_gin(image, second),
                       atol=1e-5)
    assert mixed.shape == image.shape
    stage = IntensityAugmentation(gin_probability=1.0, ipa_probability=1.0)
    seg = np.zeros((1, 1, *image.shape), dtype=np.int16)
    one = stage(image[None, None], seg, np.random.default_rng(5))[0]
    two = stage(image[None, None], seg, np.random.default_rng(5))[0]
    assert np.array_equal(one, two)


def test_image_zscore_gives_every_image_the_same_range() -> None:
    rng = np.random.default_rng(0)
    ct = rng.normal(-0.3, 2.0, size=(1, 20, 30, 30)).astype(np.float32)
    mr = rng.normal(300.0, 90.0, size=(1, 20, 30, 30)).astype(np.float32)
    ct[0, 0, 0, :5] = 1e4  # a few outliers (metal) must not set the scale
    for volume in (ct, mr):
        scaled = apply_scaling(volume, scaling_parameters(volume, "image_zscore"))
        assert abs(float(np.median(scaled))) < 0.05
        assert 0.9 < float(np.percentile(scaled, 84) - np.percentile(scaled, 16)) / 2 < 1.1
    plan = apply_scaling(ct, scaling_parameters(ct, "plan"))
    assert np.array_equal(plan, ct)
    batch = np.stack([ct, ct])  # (B, C, ...) with the channel on axis 1
    parameters = scaling_parameters(ct, "image_zscore")
    assert np.allclose(apply_scaling(batch, parameters, channel_axis=1)[1],
                       apply_scaling(ct, parameters))
