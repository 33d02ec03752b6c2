"""A file_ending that does not match the files is named as such, with the ending to use
(issue 12, item 9), instead of "Set numTraining to 0"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swinfuse_auto.cli.plan_and_preprocess import main as plan_main
from swinfuse_auto.dataset.verify import verify_dataset


def _set_file_ending(raw: Path, ending: str) -> None:
    data = json.loads((raw / "dataset.json").read_text())
    data["file_ending"] = ending
    (raw / "dataset.json").write_text(json.dumps(data))


def test_wrong_file_ending_suggests_the_ending_of_the_files(example_copy: Path) -> None:
    _set_file_ending(example_copy, ".nii")
    report = verify_dataset(example_copy, full=False)
    messages = " ".join(i.message for i in report.issues)
    assert "numTraining" not in messages
    issue, = [i for i in report.errors if i.check == "file_ending"]
    assert issue.file == "dataset.json"
    assert "file_ending is '.nii'" in issue.message
    assert "Set file_ending to '.nii.gz'" in issue.message
    stray = [i for i in report.warnings if i.check == "unexpected_file"]
    assert stray and all("set file_ending to '.nii.gz'" in i.message for i in stray)


def test_stray_file_does_not_suggest_another_ending(example_copy: Path) -> None:
    (example_copy / "imagesTr" / "notes.nrrd").write_bytes(b"")
    issue, = [i for i in verify_dataset(example_copy, full=False).issues
              if i.check == "unexpected_file"]
    assert "file_ending to" not in issue.message and "Rename it" in issue.message


def test_plan_and_preprocess_reports_the_wrong_ending(example_copy: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    _set_file_ending(example_copy, ".nii")
    code = plan_main(["-d", str(example_copy), "--preprocessed", str(tmp_path / "pre"),
                      "-np", "1", "--device", "cpu", "--no-progress"])
    message = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "Set file_ending to '.nii.gz'" in message and "Set numTraining to 0" not in message
