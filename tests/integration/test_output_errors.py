"""OS errors as a user meets them: a read-only output location is refused before any work, a full
disk and other OS errors give the one-paragraph message and exit 2, never a traceback, and a list
of dataset problems keeps one line per problem."""

from __future__ import annotations

import argparse
import errno
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers.untrained import untrained_plan, write_untrained_model
from swinfuse_auto.cli import (evaluate, export_model, plan_and_preprocess, predict, pretrain,
                               train_fold)
from swinfuse_auto.cli.common import run_command
from swinfuse_auto.example_data.grid import nominal_spacing
from swinfuse_auto.inference import folder_prediction
from swinfuse_auto.io.atomic import atomic_path, is_temporary, read_json
from swinfuse_auto.preprocessing import cache
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER


@pytest.fixture(scope="module")
def model_dir(example_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained one-fold model of the example dataset, the smallest the plan accepts
    (these tests check files, messages and exit codes, never segmentations)."""
    dataset_json = read_json(example_raw_dir / "dataset.json")
    spacing = tuple(1.5 * s for s in nominal_spacing())
    smallest = {"feature_size": 3, "depths": (1,) * 4, "num_heads": (1,) * 4}
    plan = untrained_plan(dataset_json, spacing, (32, 32, 64), smallest)
    return write_untrained_model(tmp_path_factory.mktemp("model") / "untrained__tiny", plan,
                                 dataset_json, (0,))


def _plan_and_preprocess_args(locked: Path, raw_dir: Path, roots: dict[str, str]) -> list[str]:
    return ["-d", str(raw_dir), "--preprocessed", str(locked), "-np", "1", "--no-progress"]


def _pretrain_args(locked: Path, raw_dir: Path, roots: dict[str, str]) -> list[str]:
    return [raw_dir.name, "--raw", roots["raw"], "--preprocessed", roots["preprocessed"],
            "--results", str(locked), "--device", "cpu", "--no-progress"]


def _train_fold_args(locked: Path, raw_dir: Path, roots: dict[str, str]) -> list[str]:
    return [raw_dir.name, "0", "--raw", roots["raw"], "--preprocessed", roots["preprocessed"],
            "--results", str(locked), "--device", "cpu", "--no-progress", "--epochs", "1",
            "--iterations-per-epoch", "1", "--pretrain", "none"]


def _predict_args(locked: Path, raw_dir: Path, roots: dict[str, str]) -> list[str]:
    return ["-i", str(raw_dir / "imagesTs"), "-o", str(locked / "predictions"), "-m",
            roots["model"], "--no-tta", "--no-progress", "--device", "cpu"]


def _evaluate_args(locked: Path, raw_dir: Path, roots: dict[str, str]) -> list[str]:
    return ["-r", str(raw_dir / "labelsTs"), "-p", str(locked), "-d", str(raw_dir)]


def _export_model_args(locked: Path, raw_dir: Path, roots: dict[str, str]) -> list[str]:
    return ["-m", roots["model"], "-o", str(locked / "model.zip")]


COMMANDS: dict[str, tuple[Callable[[list[str]], int], Callable[..., list[str]]]] = {
    "plan_and_preprocess": (plan_and_preprocess.main, _plan_and_preprocess_args),
    "pretrain": (pretrain.main, _pretrain_args),
    "train_fold": (train_fold.main, _train_fold_args),
    "predict": (predict.main, _predict_args),
    "evaluate": (evaluate.main, _evaluate_args),
    "export_model": (export_model.main, _export_model_args),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_read_only_output_location_is_refused_up_front(
        command: str, example_raw_dir: Path, tiny_roots: dict[str, str], model_dir: Path,
        tmp_path: Path, make_read_only: Callable[[Path], Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    if command == "evaluate":  # the predictions are there; summary.json cannot be added
        shutil.copytree(example_raw_dir / "labelsTs", locked)
    make_read_only(locked)
    predicted: list[str] = []
    monkeypatch.setattr(folder_prediction._FolderRun, "predict",
                        lambda self, case, *rest: predicted.append(case.case_id))
    main, arguments = COMMANDS[command]
    code = main(arguments(locked, example_raw_dir, {**tiny_roots, "model": str(model_dir)}))
    err = capsys.readouterr().err
    assert code == 2 and "error: " in err, err
    message = " ".join(err[err.index("error: "):].split())  # logging may come first
    assert str(locked) in message and "writable" in message, err
    assert "Traceback" not in err
    assert predicted == []  # predict refused before the first case


def test_full_disk_during_preprocessing_is_a_message_and_leaves_no_partial_file(
        example_raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def disk_fills_up(file: Path, array: np.ndarray, *args: object, **kwargs: object) -> None:
        Path(file).write_bytes(b"\x93NUMPY partial")  # some bytes made it, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.np, "save", disk_fills_up)
    code = plan_and_preprocess.main(["-d", str(example_raw_dir), "--preprocessed",
                                     str(tmp_path), "-np", "1", "--no-progress", "--device",
                                     "cpu"])
    err = capsys.readouterr().err
    message = " ".join(err.split())
    store = tmp_path / example_raw_dir.name / LABELLED_FOLDER
    assert code == 2 and "Traceback" not in err, err
    assert "No space left on device" in message and "Free disk space" in message
    assert str(store / "ct_000.npy") in message  # the file, not its hidden temporary
    assert list(store.iterdir()) == []  # no array, no properties, no temporary


def test_full_disk_while_predicting_stops_with_exit_2_not_tracebacks(
        example_raw_dir: Path, model_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def disk_fills_up(*args: object) -> float:
        with atomic_path(tmp_path / "out" / "mr_000.nii.gz") as tmp:
            tmp.write_bytes(b"\x1f\x8b")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder_prediction, "_write_segmentation", disk_fills_up)
    code = predict.main(["-i", str(example_raw_dir / "imagesTs"), "-o", str(tmp_path / "out"),
                         "-m", str(model_dir), "--no-tta", "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert str(tmp_path / "out" / "mr_000.nii.gz") in " ".join(err.split())
    assert not [p for p in (tmp_path / "out").iterdir() if is_temporary(p)]


def test_os_error_message_names_the_file_and_the_fix(
        capsys: pytest.CaptureFixture[str]) -> None:
    def denied(args: argparse.Namespace) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", "/data/pre/plans.json")

    parser = plan_and_preprocess.build_parser
    assert run_command(lambda: argparse.ArgumentParser(prog=parser().prog), denied, []) == 2
    err = capsys.readouterr().err
    assert " ".join(err.split()) == ("error: /data/pre/plans.json: Permission denied. Give this "
                                     "user access to it or choose another folder with "
                                     "--preprocessed.")


def _shift_origin(path: Path) -> None:
    image = sitk.ReadImage(str(path))
    image.SetOrigin(tuple(o + 5.0 for o in image.GetOrigin()))
    sitk.WriteImage(image, str(path), useCompression=True)


def test_each_dataset_problem_gets_its_own_line(example_copy: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (example_copy / "labelsTr" / "ct_001.nii.gz").unlink()
    _shift_origin(example_copy / "labelsTr" / "ct_003.nii.gz")
    code = plan_and_preprocess.main(["-d", str(example_copy), "--preprocessed",
                                     str(tmp_path / "pre"), "-np", "1", "--no-progress"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert lines[0].startswith("error: Dataset verification of")
    headings = [line.strip() for line in lines if line.startswith("  ") and
                not line.startswith("    ")]
    assert headings == ["geometry_mismatch: 1 error(s)", "missing_label: 1 error(s)"] or \
        headings == ["missing_label: 1 error(s)", "geometry_mismatch: 1 error(s)"], lines
    problems = [line for line in lines if line.startswith("    - ")]
    assert len(problems) == 2 and "ct_001" in problems[0] + problems[1]
    assert "ct_003" in problems[0] + problems[1]
