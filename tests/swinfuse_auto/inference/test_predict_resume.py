"""A re-run of folder prediction trusts only whole outputs and cleans up after a killed run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from swinfuse_auto.api import load_model, predict_folder
from swinfuse_auto.inference.segmentation_model import SegmentationModel
from swinfuse_auto.io.image import read_image
from swinfuse_auto.io.nifti_scan import damage
from swinfuse_auto.io.output_checks import npy_problem

SHAPE = (17, 25, 21)


@pytest.fixture(scope="module")
def model(one_channel_model: Path) -> SegmentationModel:
    return load_model(one_channel_model, folds=[1], device="cpu", tta=False)


@pytest.fixture
def predicted(model: SegmentationModel, tmp_path: Path, write_case: Callable,
              volume_factory: Callable, grid_factory: Callable) -> Path:
    """A folder ``in`` with one case, predicted (with probabilities) into ``out``."""
    write_case(tmp_path / "in", "case", volume_factory(SHAPE)[None], grid_factory(SHAPE))
    predict_folder(tmp_path / "in", tmp_path / "out", model, save_probabilities=True)
    return tmp_path / "out"


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "truncated_segmentation": ("case.nii.gz", _cut_in_half),
    "empty_segmentation": ("case.nii.gz", lambda p: p.write_bytes(b"")),
    "truncated_probabilities": ("case_probabilities.npy", _cut_in_half),
    "empty_probabilities": ("case_probabilities.npy", lambda p: p.write_bytes(b"")),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_output_is_predicted_again(kind: str, predicted: Path, model: SegmentationModel,
                                           caplog: pytest.LogCaptureFixture) -> None:
    name, breaker = DAMAGE[kind]
    expected_labels, _ = read_image(predicted / "case.nii.gz", dtype=None)
    breaker(predicted / name)
    with caplog.at_level(logging.WARNING):
        report = predict_folder(predicted.parent / "in", predicted, model,
                                save_probabilities=True)
    assert [o.status for o in report.outcomes] == ["written"]
    assert f"{predicted / name} is damaged" in caplog.text
    assert damage(predicted / "case.nii.gz") is None
    assert npy_problem(predicted / "case_probabilities.npy") is None
    labels, _ = read_image(predicted / "case.nii.gz", dtype=None)
    assert np.array_equal(labels, expected_labels)
    assert np.load(predicted / "case_probabilities.npy").shape == (3, *SHAPE)


def test_whole_outputs_are_still_skipped(predicted: Path, model: SegmentationModel) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in predicted.iterdir()}
    report = predict_folder(predicted.parent / "in", predicted, model, save_probabilities=True)
    assert [o.status for o in report.outcomes] == ["skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in predicted.iterdir()} == before


def test_stale_temporaries_are_removed_and_user_files_kept(predicted: Path,
                                                           model: SegmentationModel) -> None:
    stale = [predicted / ".case.nii.gz.k3j_x9ab.tmp.nii.gz",  # as a kill leaves them: 0 bytes
             predicted / ".case_probabilities.npy.q0w9e8r7.tmp.npy"]
    for path in stale:
        path.write_bytes(b"")
    kept = [predicted / ".notes.tmp", predicted / "my.case.nii.gz.tmp", predicted / ".hidden"]
    for path in kept:
        path.write_text("the user's own")
    report = predict_folder(predicted.parent / "in", predicted, model, save_probabilities=True)
    assert [o.status for o in report.outcomes] == ["skipped"]
    assert not any(path.exists() for path in stale)
    assert all(path.read_text() == "the user's own" for path in kept)
