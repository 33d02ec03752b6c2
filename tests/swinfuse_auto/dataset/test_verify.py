"""Dataset verification: each kind of broken dataset yields its check id, the file and a fix."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers.progress import RecordingProgress
from swinfuse_auto.dataset import cases as discovery
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.dataset.verify import (CHECKS, Issue, VerifyReport, raise_for_report,
                                          verify_dataset)
from swinfuse_auto.dataset.verify_checks import CaseJob, check_case
from swinfuse_auto.errors import ConfigError, DatasetError

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture
def raw(example_copy: Path) -> Path:
    """A fresh, clean dataset copy that each test may break."""
    return Path(example_copy)


def _first_case(raw: Path) -> tuple[str, Path, Path]:
    case = discovery.training_cases(raw, load_dataset_spec(raw))[0]
    return case.case_id, case.channel_path(0), case.label  # type: ignore[return-value]


def _rewrite(path: Path, change: Callable[[sitk.Image], sitk.Image]) -> None:
    sitk.WriteImage(change(sitk.ReadImage(str(path))), str(path), useCompression=True)


def _edit_json(raw: Path, change: Callable[[dict], None]) -> None:
    data = json.loads((raw / "dataset.json").read_text())
    change(data)
    (raw / "dataset.json").write_text(json.dumps(data))


def _only(report: VerifyReport, check: str) -> list[Issue]:
    found = [i for i in report.issues if i.check == check]
    assert found, f"no {check} issue in {[i.check for i in report.issues]}"
    return found


def _assert_names_file_and_fix(issue: Issue, fix_word: str) -> None:
    assert issue.file is not None and issue.file in issue.message
    assert fix_word.lower() in issue.message.lower()
    assert "above" not in issue.message


def _snapshot(raw: Path) -> dict[str, tuple[str, int]]:
    return {p.relative_to(raw).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                            p.stat().st_mtime_ns)
            for p in sorted(raw.rglob("*")) if p.is_file()}


def test_clean_dataset_has_no_errors(raw: Path) -> None:
    spec = load_dataset_spec(raw)
    report = verify_dataset(raw, full=True)
    assert report.errors == []
    assert report.cases_checked == (len(discovery.training_cases(raw, spec))
                                   + len(discovery.held_out_cases(raw, spec)))
    assert {i.check for i in report.issues} <= set(CHECKS)


@pytest.mark.parametrize("name", ["Dataset901_RadiomicsMR", "Dataset902_RadiomicsLungCT",
                                  "Dataset903_BrainTissueMR", "Dataset904_CraniumCT"])
def test_real_datasets_verify_clean(name: str) -> None:
    if not (SHARED_DATA / name).is_dir():
        pytest.skip(f"{SHARED_DATA / name} is not available")
    report = verify_dataset(SHARED_DATA / name, full=True)
    assert report.errors == [], [i.message for i in report.errors]


def test_4d_image_is_not_3d(raw: Path) -> None:
    case_id, image, _ = _first_case(raw)
    four_d = sitk.GetImageFromArray(np.zeros((2, 4, 5, 6), np.float32), isVector=False)
    sitk.WriteImage(four_d, str(image))
    issue, = _only(verify_dataset(raw, full=False), "not_3d")
    assert issue.case_id == case_id and "4D" in issue.message
    _assert_names_file_and_fix(issue, "one 3D file per channel")


@pytest.mark.parametrize("keep_fraction, full", [(0.5, False), (0.5, True), (0.0, False)])
def test_truncated_file_is_unreadable(raw: Path, keep_fraction: float, full: bool) -> None:
    """SimpleITK reads a truncated .nii.gz without complaint; even the cheap check must not."""
    case_id, image, _ = _first_case(raw)
    data = image.read_bytes()
    image.write_bytes(data[: max(10, int(len(data) * keep_fraction))])
    issue, = _only(verify_dataset(raw, full=full), "unreadable")
    assert issue.case_id == case_id
    _assert_names_file_and_fix(issue, "re-export")


def test_nan_in_image(raw: Path) -> None:
    case_id, image, _ = _first_case(raw)

    def add_nan(img: sitk.Image) -> sitk.Image:
        array = sitk.GetArrayFromImage(img).astype(np.float32)
        array[0, 0, :3] = np.nan
        array[0, 1, 0] = np.inf
        out = sitk.GetImageFromArray(array)
        out.CopyInformation(img)
        return out

    _rewrite(image, add_nan)
    assert not [i for i in verify_dataset(raw, full=False).issues if i.check == "nan_inf"]
    issue, = _only(verify_dataset(raw, full=True), "nan_inf")
    assert "3 NaN and 1 infinite" in issue.message
    _assert_names_file_and_fix(issue, "nan_to_num")


def test_nan_in_non_nifti_file(tmp_path: Path) -> None:
    array = np.ones((4, 5, 6), np.float32)
    array[0, 0, 0] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "c_0000.mha"))
    job = CaseJob(str(tmp_path), "c", "imagesTs", "labelsTs", ("c_0000.mha",), None, ".mha",
                  (("background", 0),), True, False)
    issue, empty = check_case(job).issues
    assert issue.check == "nan_inf" and "1 NaN and 0 infinite" in issue.message
    assert empty.check == "empty_image" and "every voxel is 1" in empty.message


def test_label_value_7_lists_unexpected_and_allowed(raw: Path) -> None:
    _, _, label = _first_case(raw)

    def add_seven(img: sitk.Image) -> sitk.Image:
        img[0, 0, 0] = 7
        return img

    _rewrite(label, add_seven)
    issue, = _only(verify_dataset(raw), "unexpected_label")
    assert "value(s) 7 " in issue.message and "background=0" in issue.message
    _assert_names_file_and_fix(issue, "Add the classes to 'labels'")


def test_non_integer_label(raw: Path) -> None:
    _, _, label = _first_case(raw)
    _rewrite(label, lambda img: sitk.Cast(img, sitk.sitkFloat32) * 0.5)
    issue, = _only(verify_dataset(raw), "non_integer_label")
    _assert_names_file_and_fix(issue, "nearest-neighbour")


def test_constant_image_is_empty(raw: Path) -> None:
    _, image, _ = _first_case(raw)
    _rewrite(image, lambda img: img * 0)
    issue, = _only(verify_dataset(raw), "empty_image")
    assert "every voxel is 0" in issue.message
    _assert_names_file_and_fix(issue, "replace the file")


def _shift_origin(img: sitk.Image) -> sitk.Image:
    img.SetOrigin(tuple(np.add(img.GetOrigin(), (5.0, 0.0, 0.0))))
    return img


def _scale_spacing(img: sitk.Image) -> sitk.Image:
    img.SetSpacing(tuple(np.multiply(img.GetSpacing(), (1.0, 1.0, 1.5))))
    return img


def _flip_direction(img: sitk.Image) -> sitk.Image:
    img.SetDirection(tuple(np.multiply(img.GetDirection(), (-1, 1, 1) * 3)))
    return img


def _crop(img: sitk.Image) -> sitk.Image:
    return img[:, :, 1:]


@pytest.mark.parametrize("change, prop, fix", [
    (_shift_origin, "origin", "CopyInformation"), (_scale_spacing, "spacing", "Resample"),
    (_flip_direction, "direction", "Resample"), (_crop, "shape", "Resample")])
def test_label_geometry_mismatch_is_an_error(raw: Path, change: Callable[[sitk.Image],
                                             sitk.Image], prop: str, fix: str) -> None:
    case_id, image, label = _first_case(raw)
    expected = sitk.ReadImage(str(image))
    _rewrite(label, change)
    for full in (False, True):
        issue, = _only(verify_dataset(raw, full=full), "geometry_mismatch")
        assert issue.severity == "error" and issue.case_id == case_id
        assert f"{prop} found" in issue.message and image.name in issue.message
        _assert_names_file_and_fix(issue, fix)
    if prop == "origin":
        assert f"{expected.GetOrigin()[0] + 5:.6g}" in issue.message


def test_test_case_label_geometry_is_checked(raw: Path) -> None:
    case = discovery.held_out_cases(raw, load_dataset_spec(raw))[0]
    if case.label is None:
        pytest.skip("the example dataset has no labelsTs")
    _rewrite(case.label, _shift_origin)
    issue, = _only(verify_dataset(raw, full=False), "geometry_mismatch")
    assert issue.case_id == case.case_id and issue.file.startswith("labelsTs/")
    assert not verify_dataset(raw, include_test=False).errors


def _add_channel(data: dict) -> None:
    for names in [data["channel_names"], *data.get("case_channel_names", {}).values()]:
        names[str(len(names))] = "T2"


def test_missing_channel_for_every_case(raw: Path) -> None:
    _edit_json(raw, _add_channel)
    spec = load_dataset_spec(raw)
    issues = _only(verify_dataset(raw, full=False), "missing_channel")
    all_cases = discovery.training_cases(raw, spec) + discovery.held_out_cases(raw, spec)
    assert len(issues) == len([c for c in all_cases if any(c.images)])
    missing = f"_{spec.num_channels - 1:04d}.nii.gz"
    assert all(i.file.endswith(missing) for i in issues)
    _assert_names_file_and_fix(issues[0], "Add the file")


def test_missing_label_and_orphan_label(raw: Path) -> None:
    case_id, image, label = _first_case(raw)
    label.unlink()
    issue, = _only(verify_dataset(raw, full=False), "missing_label")
    assert issue.case_id == case_id
    _assert_names_file_and_fix(issue, "Add the label")
    sitk.WriteImage(sitk.ReadImage(str(image)), str(label))
    image.unlink()
    report = verify_dataset(raw, full=False)
    issue, = _only(report, "orphan_label")
    _assert_names_file_and_fix(issue, "Add the image")
    _only(report, "num_training")


def test_num_training_mismatch(raw: Path) -> None:
    count = len(discovery.training_cases(raw, load_dataset_spec(raw)))
    _edit_json(raw, lambda d: d.update(numTraining=count + 5))
    issue, = _only(verify_dataset(raw, full=False), "num_training")
    assert f"numTraining is {count + 5}" in issue.message
    _assert_names_file_and_fix(issue, f"Set numTraining to {count}")


@pytest.mark.parametrize("change, expected", [
    (lambda d: d.pop("labels"), "missing key 'labels'"),
    (lambda d: d.pop("numTraining"), "missing key 'numTraining'"),
    (lambda d: d.update(channel_names={"zero": "CT"}), "keys must be channel numbers"),
    (lambda d: d.update(labels=["background"]), "'labels' must be an object"),
    (None, "does not exist")])
def test_dataset_json_problems_stop_verification(raw: Path, change: Callable[[dict], None] | None,
                                                 expected: str) -> None:
    if change is None:
        (raw / "dataset.json").unlink()
    else:
        _edit_json(raw, change)
    report = verify_dataset(raw)
    issue, = report.issues
    assert issue.check == "dataset_json" and report.cases_checked == 0
    assert expected in issue.message


def test_stray_files_extra_channel_and_absent_class(raw: Path) -> None:
    case_id, image, _ = _first_case(raw)
    (raw / "imagesTr" / f"{case_id}.nii").write_bytes(b"")
    (raw / "imagesTr" / f"{case_id}_0009.nii.gz").write_bytes(image.read_bytes())
    _edit_json(raw, lambda d: d["labels"].update(never_drawn=max(d["labels"].values()) + 1))
    report = verify_dataset(raw)
    assert _only(report, "unexpected_file")[0].severity == "warning"
    assert _only(report, "extra_channel")[0].severity == "error"
    absent, = _only(report, "absent_class")
    assert absent.severity == "warning" and "never_drawn" in absent.message


def test_many_problems_reported_in_one_pass(raw: Path) -> None:
    case_id, image, label = _first_case(raw)
    _rewrite(label, _shift_origin)
    _edit_json(raw, lambda d: d.update(numTraining=99))
    second = discovery.training_cases(raw, load_dataset_spec(raw))[1]
    second.label.unlink()  # type: ignore[union-attr]
    checks = {i.check for i in verify_dataset(raw).errors}
    assert {"geometry_mismatch", "num_training", "missing_label"} <= checks


def test_parallel_report_equals_serial(raw: Path) -> None:
    _, _, label = _first_case(raw)
    _rewrite(label, _crop)
    serial = verify_dataset(raw, num_processes=1)
    progress = RecordingProgress()
    parallel = verify_dataset(raw, num_processes=2, progress=progress)
    assert serial.to_dict() == parallel.to_dict()
    assert serial.errors
    [bar] = progress.bars  # reported through the callback, case by case, and closed
    assert bar.done == bar.total == parallel.cases_checked and bar.closed


def test_verification_never_modifies_raw_folder(raw: Path, tmp_path: Path) -> None:
    _, _, label = _first_case(raw)
    _rewrite(label, _shift_origin)
    before = _snapshot(raw)
    for full in (False, True):
        with pytest.raises(DatasetError):
            raise_for_report(verify_dataset(raw, full=full), tmp_path / "verify_report.json")
    assert _snapshot(raw) == before


def test_severity_overrides(raw: Path) -> None:
    _, _, label = _first_case(raw)
    _rewrite(label, _shift_origin)
    report = verify_dataset(raw, severities={"geometry_mismatch": "warning"})
    assert not report.errors and _only(report, "geometry_mismatch")[0].severity == "warning"
    assert not verify_dataset(raw, severities={"geometry_mismatch": "ignore"}).issues
    with pytest.raises(ConfigError, match="did you mean 'geometry_mismatch'"):
        verify_dataset(raw, severities={"geometry_missmatch": "warning"})


def test_raise_for_report_summarises_and_writes_json(raw: Path, tmp_path: Path) -> None:
    spec = load_dataset_spec(raw)
    for case in discovery.training_cases(raw, spec):
        _rewrite(case.label, _shift_origin)  # type: ignore[arg-type]
    report = verify_dataset(raw, full=False)
    path = tmp_path / "out" / "verify_report.json"
    with pytest.raises(DatasetError) as info:
        raise_for_report(report, path)
    message = str(info.value)
    count = len(discovery.training_cases(raw, spec))
    assert f"geometry_mismatch: {count} error(s)" in message and str(path) in message
    assert message.count("    - case ") == min(count, 3)
    written = json.loads(path.read_text())
    assert written["num_errors"] == count and len(written["issues"]) == len(report.issues)


def test_raise_for_report_without_errors_writes_and_logs(
        raw: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _edit_json(raw, lambda d: d["labels"].update(never_drawn=max(d["labels"].values()) + 1))
    report = verify_dataset(raw)
    path = tmp_path / "verify_report.json"
    with caplog.at_level(logging.WARNING, logger="swinfuse_auto.dataset.verify"):
        raise_for_report(report, path)
    assert "never_drawn" in caplog.text
    assert json.loads(path.read_text())["num_errors"] == 0
