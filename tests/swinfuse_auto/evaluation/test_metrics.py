from __future__ import annotations

import math

import numpy as np
import pytest

from swinfuse_auto.errors import ConfigError, DatasetError
from swinfuse_auto.evaluation.metrics import (confusion_counts, dice, evaluate_case,
                                              hausdorff_distance, hausdorff_distance_95,
                                              normalized_surface_dice, summarize,
                                              surface_distances)

SPACING = (2.5, 0.75, 1.25)  # (z, y, x) mm, exactly representable
SHAPE = (16, 18, 20)


def _cube(start: tuple[int, int, int], size: int = 6, label: int = 1) -> np.ndarray:
    volume = np.zeros(SHAPE, dtype=np.uint8)
    z, y, x = start
    volume[z:z + size, y:y + size, x:x + size] = label
    return volume


def _plane(axis: int, index: int, label: int = 1) -> np.ndarray:
    volume = np.zeros(SHAPE, dtype=np.uint8)
    where = [slice(None)] * 3
    where[axis] = slice(index, index + 1)
    volume[tuple(where)] = label
    return volume


def test_cubes_with_known_overlap_give_exact_dice_and_counts() -> None:
    pred, ref = _cube((4, 4, 4)), _cube((4, 6, 4))  # overlap 6 * 4 * 6 = 144 of 216 each
    assert confusion_counts(pred, ref, 1) == (144, 72, 72, pred.size - 288)
    assert dice(pred, ref, 1) == pytest.approx(2 / 3)
    assert dice(pred, pred, 1) == 1.0
    assert dice(pred, np.zeros_like(pred), 1) == 0.0


@pytest.mark.parametrize("axis, first, second", [(0, 3, 7), (1, 2, 9), (2, 5, 8)])
def test_parallel_planes_hd95_is_the_gap_in_mm(axis: int, first: int, second: int) -> None:
    pred, ref = _plane(axis, first), _plane(axis, second)
    gap = (second - first) * SPACING[axis]
    assert hausdorff_distance_95(pred, ref, 1, SPACING) == gap
    to_ref, to_pred = surface_distances(pred, ref, 1, SPACING)
    assert np.all(to_ref == gap) and np.all(to_pred == gap)


def test_shifted_cubes_hausdorff_is_the_shift_in_mm() -> None:
    pred, ref = _cube((4, 4, 4)), _cube((4, 6, 4))
    assert hausdorff_distance(pred, ref, 1, SPACING, percentile=100) == 2 * SPACING[1]
    assert 0 < hausdorff_distance_95(pred, ref, 1, SPACING) <= 2 * SPACING[1]
    assert hausdorff_distance_95(pred, pred, 1, SPACING) == 0.0


def test_structure_at_the_image_border_has_a_surface_there() -> None:
    pred = np.zeros(SHAPE, dtype=np.uint8)
    pred[:3] = 1  # touches the volume's z = 0 face
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[:3, :, :-1] = 1
    assert hausdorff_distance(pred, ref, 1, SPACING, percentile=100) == SPACING[2]


def test_nsd_within_tolerance_is_one_and_beyond_is_zero() -> None:
    pred, ref = _plane(0, 4), _plane(0, 5)  # 2.5 mm apart
    assert normalized_surface_dice(pred, ref, 1, SPACING, tolerance_mm=2.5) == 1.0
    assert normalized_surface_dice(pred, ref, 1, SPACING, tolerance_mm=2.4) == 0.0


def test_nsd_known_fraction() -> None:
    pred = _plane(0, 4)                # full plane: n voxels
    ref = _plane(0, 5)
    ref[:, :, 10:] = 0                 # half plane one slice away: n / 2 voxels
    # pred voxels above ref (n/2) and all ref voxels are 2.5 mm away; the other pred voxels are
    # at least sqrt(2.5**2 + 1.25**2) mm away: (n/2 + n/2) / (n + n/2) = 2/3.
    assert normalized_surface_dice(pred, ref, 1, SPACING, tolerance_mm=2.5) == pytest.approx(2 / 3)


def test_empty_class_conventions() -> None:
    empty, cube = np.zeros(SHAPE, dtype=np.uint8), _cube((2, 2, 2))
    assert math.isnan(dice(empty, empty, 1))
    assert math.isnan(hausdorff_distance_95(empty, empty, 1, SPACING))
    assert math.isnan(normalized_surface_dice(empty, empty, 1, SPACING))
    for pred, ref in [(cube, empty), (empty, cube)]:
        assert dice(pred, ref, 1) == 0.0
        assert hausdorff_distance_95(pred, ref, 1, SPACING) == math.inf
        assert normalized_surface_dice(pred, ref, 1, SPACING) == 0.0


def test_evaluate_case_and_summarize() -> None:
    ref = _cube((4, 4, 4)) + _cube((10, 10, 12), size=3, label=2)
    pred = _cube((4, 6, 4))
    case = evaluate_case(pred, ref, [1, 2, 3], SPACING, tolerance_mm=1.0)
    assert case[1]["dice"] == pytest.approx(2 / 3) and case[1]["iou"] == pytest.approx(0.5)
    assert case[1]["n_pred"] == 216.0 and case[1]["tp"] == 144.0
    assert case[1]["nsd"] == normalized_surface_dice(pred, ref, 1, SPACING, 1.0)
    assert case[1]["hd95"] == hausdorff_distance_95(pred, ref, 1, SPACING)
    assert case[2]["dice"] == 0.0 and case[2]["hd95"] == math.inf
    assert math.isnan(case[3]["dice"])
    perfect = evaluate_case(ref, ref, [1, 2, 3], SPACING)
    summary = summarize({"a": case, "b": perfect})
    assert summary["num_cases"] == 2
    assert summary["mean"][1]["dice"] == pytest.approx(5 / 6)
    assert summary["mean"][2]["dice"] == pytest.approx(0.5)
    assert math.isnan(summary["mean"][3]["dice"])  # absent everywhere: nothing to average
    assert summary["foreground_mean"]["dice"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert summary["mean"][2]["hd95"] == math.inf


def test_invalid_inputs_are_reported() -> None:
    with pytest.raises(DatasetError, match="same shape"):
        dice(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), 1)
    with pytest.raises(ConfigError, match="spacing"):
        hausdorff_distance_95(_cube((1, 1, 1)), _cube((1, 1, 1)), 1, (1.0, 0.0, 1.0))
    with pytest.raises(ConfigError, match="tolerance_mm"):
        normalized_surface_dice(_cube((1, 1, 1)), _cube((1, 1, 1)), 1, SPACING, -1.0)
