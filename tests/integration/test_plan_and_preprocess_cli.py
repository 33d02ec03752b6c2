"""The command on broken datasets: non-zero exit, a message naming the file and the fix, and
nothing written that a later run could mistake for a result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from swinfuse_auto.cli.plan_and_preprocess import main


def _rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    image = sitk.ReadImage(str(path))
    new = sitk.GetImageFromArray(change(sitk.GetArrayFromImage(image)))
    new.CopyInformation(image)
    sitk.WriteImage(new, str(path), useCompression=True)


def _shift_origin(path: Path) -> None:
    image = sitk.ReadImage(str(path))
    image.SetOrigin(tuple(o + 5.0 for o in image.GetOrigin()))
    sitk.WriteImage(image, str(path), useCompression=True)


def _drop_key(raw: Path) -> None:
    data = json.loads((raw / "dataset.json").read_text())
    del data["file_ending"]
    (raw / "dataset.json").write_text(json.dumps(data))


DEFECTS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (break the copy, text the message must contain, a word of the fix)
    "missing_label": (lambda r: (r / "labelsTr" / "ct_001.nii.gz").unlink(),
                      "ct_001", "label"),
    "nan": (lambda r: _rewrite(r / "imagesTr" / "ct_002_0000.nii.gz",
                               lambda a: np.where(a > 100, np.nan, a).astype(np.float32)),
            "ct_002_0000.nii.gz", "NaN"),
    "label_value": (lambda r: _rewrite(r / "labelsTr" / "ct_000.nii.gz",
                                       lambda a: np.where(a == 1, 9, a).astype(a.dtype)),
                    "ct_000.nii.gz", "9"),
    "geometry": (lambda r: _shift_origin(r / "labelsTr" / "ct_003.nii.gz"),
                 "ct_003.nii.gz", "origin"),
    "corrupt": (lambda r: (r / "imagesTr" / "ct_004_0000.nii.gz").write_bytes(b"\x1f\x8b junk"),
                "ct_004_0000.nii.gz", "re-export"),
    "dataset_json": (_drop_key, "dataset.json", "file_ending"),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_broken_dataset_exits_nonzero_and_writes_no_results(
        defect: str, example_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    breaker, where, fix = DEFECTS[defect]
    breaker(example_copy)
    out = tmp_path / "pre"
    code = main(["-d", str(example_copy), "--verify", "--preprocessed", str(out), "-np", "1",
                 "--no-progress"])
    message = capsys.readouterr().err
    assert code == 2
    assert where in message and fix.lower() in message.lower(), message
    written = {p.name for p in (out / example_copy.name).glob("*")} if out.exists() else set()
    assert written <= {"verify_report.json"}, written


def test_clean_dataset_plans_and_preprocesses(example_copy: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["-d", str(example_copy), "--preprocessed", str(example_copy.parent)]) == 2
    assert "raw data must never be written" in capsys.readouterr().err
    code = main(["-d", str(example_copy), "--preprocessed", str(tmp_path / "pre"), "-np", "1",
                 "--device", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    folder = tmp_path / "pre" / example_copy.name
    assert {"plans.json", "splits_final.json", "dataset_fingerprint.json",
            "dataset.json"} <= {p.name for p in folder.iterdir()}
    assert "preprocessed 10 case(s)" in capsys.readouterr().out
