"""Voxel values that the cheap verification cannot see are caught where preprocessing reads them
(issue 12, item 3): undefined label values stop plan_and_preprocess without --verify, NaN/Inf are
counted in a warning instead of vanishing as 0."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from swinfuse_auto.api import plan_dataset
from swinfuse_auto.cli.plan_and_preprocess import main
from swinfuse_auto.dataset.case_reader import read_case
from swinfuse_auto.dataset.cases import Case
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.errors import DatasetError
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, CaseStore
from swinfuse_auto.preprocessing.runner import preprocess_dataset


def _rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    image = sitk.ReadImage(str(path))
    new = sitk.GetImageFromArray(change(sitk.GetArrayFromImage(image)))
    new.CopyInformation(image)
    sitk.WriteImage(new, str(path), useCompression=True)


def _add_seven(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array[0, 0, 0] = 7  # a corner, outside the body: cropping would drop it before counting
    array[array.shape[0] // 2, array.shape[1] // 2, array.shape[2] // 2] = 7
    return array


def _add_nan_and_inf(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float32)
    array[1, 2, 3] = np.nan
    array[2, 3, 4] = np.inf
    return array


def _plan(raw: Path, out: Path) -> int:
    """plan_and_preprocess without --verify."""
    return main(["-d", str(raw), "--preprocessed", str(out), "-np", "1", "--device", "cpu",
                 "--no-progress"])


def _seg_files_holding(out: Path, value: int) -> list[Path]:
    return [p for p in out.rglob("*_seg.npy") if (np.load(p) == value).any()]


def test_undefined_label_value_stops_planning_without_verify(
        example_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _rewrite(example_copy / "labelsTr" / "ct_002.nii.gz", _add_seven)
    out = tmp_path / "pre"
    code = _plan(example_copy, out)
    message = " ".join(capsys.readouterr().err.split())
    assert code == 2, message
    assert "labelsTr/ct_002.nii.gz" in message and "case ct_002" in message
    assert "label value(s) 7 " in message and "background=0" in message and "aorta=5" in message
    assert "correct the label file" in message and "Add the classes to 'labels'" in message
    assert "Traceback" not in message
    assert _seg_files_holding(out, 7) == []
    assert not (out / example_copy.name / "plans.json").exists()  # nothing planned


def test_stale_fingerprint_does_not_let_the_label_through(example_copy: Path,
                                                          tmp_path: Path) -> None:
    """Preprocessing checks again: a stored fingerprint may predate the check."""
    outcome = plan_dataset(example_copy, device="cpu", num_processes=1,
                           preprocessed=str(tmp_path / "pre"))
    _rewrite(example_copy / "labelsTr" / "ct_002.nii.gz", _add_seven)
    with pytest.raises(DatasetError, match=r"ct_002\.nii\.gz contains label value\(s\) 7 "):
        preprocess_dataset(example_copy, outcome.spec, outcome.plan, outcome.preprocessed_dir)
    store = CaseStore(outcome.preprocessed_dir / LABELLED_FOLDER)
    assert store.case_ids() == ["ct_000", "ct_001"]  # the cases before it, not it
    assert not list(store.folder.glob("ct_002*"))
    assert _seg_files_holding(tmp_path / "pre", 7) == []


def test_nan_and_inf_are_counted_in_a_warning(example_copy: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    _rewrite(example_copy / "imagesTr" / "ct_001_0000.nii.gz", _add_nan_and_inf)
    _rewrite(example_copy / "imagesTs" / "mr_002_0000.nii.gz", _add_nan_and_inf)
    code = _plan(example_copy, tmp_path / "pre")
    log = " ".join(capsys.readouterr().err.split())
    assert code == 0, log
    for name in ("imagesTr/ct_001_0000.nii.gz", "imagesTs/mr_002_0000.nii.gz"):
        assert f"{name} contains 1 NaN and 1 infinite voxels" in log, log
    assert log.count("WARNING") >= 2 and "read as 0" in log


def test_nan_in_a_non_nifti_image_is_read_as_zero(tmp_path: Path) -> None:
    """SimpleITK keeps NaN in .mha files; they must not reach normalisation as NaN."""
    array = np.ones((4, 5, 6), np.float32)
    array[0, 0, 0] = np.nan
    path = tmp_path / "c_0000.mha"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    arrays = read_case(Case("c", (path,)))
    assert np.isfinite(arrays.images).all() and arrays.images[0, 0, 0, 0] == 0
    warning, = arrays.issues
    assert warning.severity == "warning" and "1 NaN and 0 infinite" in warning.message


def test_clean_dataset_reads_without_issues(example_copy: Path) -> None:
    spec = load_dataset_spec(example_copy)
    case = Case("ct_000", (example_copy / "imagesTr" / "ct_000_0000.nii.gz",),
                example_copy / "labelsTr" / "ct_000.nii.gz")
    assert read_case(case, labels=spec.labels).issues == []
