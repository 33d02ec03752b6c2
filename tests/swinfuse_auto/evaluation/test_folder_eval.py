from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from swinfuse_auto.errors import DatasetError
from swinfuse_auto.evaluation.folder_eval import evaluate_folders, from_json_safe, json_safe
from swinfuse_auto.io.image import Geometry, write_image

SHAPE = (10, 12, 12)  # z, y, x
SPACING_XYZ = (1.5, 1.0, 2.0)  # x is 1.5 mm
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
GRID = Geometry((SHAPE[2], SHAPE[1], SHAPE[0]), SPACING_XYZ, (0.0, 0.0, 0.0), IDENTITY)


def _maps() -> tuple[np.ndarray, np.ndarray]:
    """Label 1: 2-voxel slabs along x shifted by one voxel (Dice 0.5, HD95 1.5 mm);
    label 2: identical cubes; label 3: nowhere; label 4: reference only."""
    ref = np.zeros(SHAPE, dtype=np.uint8)
    pred = np.zeros(SHAPE, dtype=np.uint8)
    ref[:, 0:6, 4:6] = 1
    pred[:, 0:6, 5:7] = 1
    ref[2:5, 8:11, 8:11] = 2
    pred[2:5, 8:11, 8:11] = 2
    ref[7:9, 8:10, 1:3] = 4
    return ref, pred


def _write_pair(tmp_path: Path, pred_grid: Geometry = GRID) -> tuple[Path, Path]:
    ref, pred = _maps()
    write_image(ref, GRID, tmp_path / "ref" / "case_a.nii.gz")
    write_image(pred, pred_grid, tmp_path / "pred" / "case_a.nii.gz")
    return tmp_path / "ref", tmp_path / "pred"


def test_known_dice_hd95_and_nsd_and_json_conventions(tmp_path: Path) -> None:
    ref_dir, pred_dir = _write_pair(tmp_path)
    summary = evaluate_folders(ref_dir, pred_dir, [1, 2, 3, 4], tolerance_mm=1.0,
                               label_names={1: "slab", 2: "cube", 3: "absent", 4: "missed"})
    case = summary["cases"]["case_a"]
    assert case[1]["dice"] == pytest.approx(0.5)
    assert case[1]["hd95"] == pytest.approx(1.5)   # one voxel along x, in mm
    assert case[1]["nsd"] == pytest.approx(0.5)    # half the surface is 1.5 mm > 1 mm away
    assert (case[2]["dice"], case[2]["hd95"], case[2]["nsd"]) == (1.0, 0.0, 1.0)
    assert math.isnan(case[3]["dice"]) and math.isnan(case[3]["hd95"])
    assert case[4]["dice"] == 0.0 and math.isinf(case[4]["hd95"])
    assert summary["foreground_mean"]["dice"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    written = json.loads((pred_dir / "summary.json").read_text())
    assert written["cases"]["case_a"]["3"]["dice"] is None
    assert written["cases"]["case_a"]["4"]["hd95"] == "inf"
    assert written["labels"]["1"] == "slab" and written["tolerance_mm"] == 1.0
    assert math.isinf(from_json_safe(written)["foreground_mean"]["hd95"])
    wider = evaluate_folders(ref_dir, pred_dir, [1], tolerance_mm=2.0,
                             output_json=tmp_path / "wide.json")
    assert wider["cases"]["case_a"][1]["nsd"] == pytest.approx(1.0)
    assert (tmp_path / "wide.json").exists()


@pytest.mark.parametrize("change, what", [
    ({"spacing": (1.5, 1.0, 2.5)}, "spacing"),
    ({"origin": (0.0, 5.0, 0.0)}, "origin"),
    ({"direction": (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)}, "direction"),
])
def test_geometry_mismatch_is_an_error_not_a_resample(tmp_path: Path, change: dict,
                                                      what: str) -> None:
    grid = Geometry(**{**GRID.to_dict(), **change})  # type: ignore[arg-type]
    ref_dir, pred_dir = _write_pair(tmp_path, grid)
    with pytest.raises(DatasetError, match=f"not on the same grid \\({what}"):
        evaluate_folders(ref_dir, pred_dir, [1])


def test_unpaired_cases_and_non_label_files_are_errors(tmp_path: Path) -> None:
    ref_dir, pred_dir = _write_pair(tmp_path)
    write_image(_maps()[0], GRID, ref_dir / "case_b.nii.gz")
    with pytest.raises(DatasetError, match="without a prediction.*case_b"):
        evaluate_folders(ref_dir, pred_dir, [1])
    write_image(np.full(SHAPE, 0.5, dtype=np.float32), GRID, pred_dir / "case_b.nii.gz")
    with pytest.raises(DatasetError, match="non-integer"):
        evaluate_folders(ref_dir, pred_dir, [1])


def test_json_safe_round_trip() -> None:
    data = {1: [math.nan, math.inf, -math.inf, np.float32(0.25)], "k": "text"}
    safe = json_safe(data)
    assert safe == {"1": [None, "inf", "-inf", 0.25], "k": "text"}
    json.dumps(safe, allow_nan=False)
    back = from_json_safe(safe)
    assert math.isnan(back["1"][0]) and back["1"][1:] == [math.inf, -math.inf, 0.25]
