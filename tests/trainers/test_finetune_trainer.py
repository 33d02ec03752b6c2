"""Fine-tuning: exact --continue after a kill, channel adaptation, argument errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from swinfuse_auto.api import pretrain, train_fold
from swinfuse_auto.cli.train_fold import main as train_fold_main
from swinfuse_auto.inference.segmentation_model import SegmentationModel
from swinfuse_auto.models.checkpoint import load_checkpoint

DATASET = "Dataset990_SwinfuseExample"
FAST = ["num_workers=0", "amp=false", "validation_batches_per_epoch=1"]


def _args(roots: dict[str, str]) -> list[str]:
    return ["--raw", roots["raw"], "--preprocessed", roots["preprocessed"],
            "--results", roots["results"]]


def _weights(fold_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(fold_dir / "checkpoint_final.pt")[0]["model"]


def _wait_for_epochs(log: Path, epochs: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            try:
                if len(json.loads(log.read_text())["epochs"]) >= epochs:
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("no epoch finished in time")


@pytest.mark.slow(seconds=60)
def test_continue_after_kill_gives_the_uninterrupted_weights(tiny_roots: dict[str, str],
                                                             tmp_path: Path) -> None:
    budget = dict(epochs=3, iterations_per_epoch=2, config_overrides=FAST, validate=False,
                  pretrain_choice="none", device="cpu")
    straight = train_fold(DATASET, 0, **budget, **{**tiny_roots, "results": str(tmp_path / "a")})
    roots = {**tiny_roots, "results": str(tmp_path / "b")}
    command = [sys.executable, "-m", "swinfuse_auto", "train_fold", DATASET, "0",
               "--pretrain", "none", "--epochs", "3", "--iterations-per-epoch", "2",
               "--no-validation", "--device", "cpu", "--no-progress", *_args(roots)]
    command += [item for o in FAST for item in ("--set", o)]
    # the killed run must use this process's thread count: another count sums in another order
    # and the weights differ in the last bits (xdist workers run with one thread)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    fold_dir = tmp_path / "b" / DATASET / "swin_dim_finetune__default" / "fold_0"
    try:
        _wait_for_epochs(fold_dir / "training_log.json", 1, process, timeout=300)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (fold_dir / "checkpoint_final.pt").exists()
    assert train_fold_main([DATASET, "0", "--pretrain", "none", "--epochs", "3",
                            "--iterations-per-epoch", "2", "--no-validation", "--device", "cpu",
                            "--no-progress", "--continue", *_args(roots),
                            *[item for o in FAST for item in ("--set", o)]]) == 0
    a, b = _weights(straight), _weights(fold_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_bad_arguments_are_explained(tiny_roots: dict[str, str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    def error() -> str:  # the message is wrapped to 100 columns
        return " ".join(capsys.readouterr().err.split())

    roots = {**tiny_roots, "results": str(tmp_path)}
    assert train_fold_main([DATASET, "9", "--pretrain", "none", *_args(roots)]) == 2
    assert "fold 9 does not exist; valid folds: 0..4" in error()
    assert train_fold_main([DATASET, "0", "--pretrain", str(tmp_path / "nope.pt"),
                            *_args(roots)]) == 2
    assert "no such file" in error()
    empty = {**roots, "preprocessed": str(tmp_path / "empty")}
    assert train_fold_main([DATASET, "0", *_args(empty)]) == 2
    assert "plan_and_preprocess" in error()


def _two_channel_copy(raw_dir: Path, target: Path) -> Path:
    """The example CT cases as a CT + T1 dataset (channel 1: a non-linear remap of the CT)."""
    target.mkdir(parents=True)
    shutil.copytree(raw_dir / "labelsTr", target / "labelsTr")
    shutil.copytree(raw_dir / "imagesTr", target / "imagesTr")
    for ct_path in sorted((target / "imagesTr").glob("*_0000.nii.gz")):
        ct = sitk.ReadImage(str(ct_path))
        t1 = np.sqrt(np.clip(sitk.GetArrayFromImage(ct).astype(np.float32) + 1024.0, 0, None))
        image = sitk.GetImageFromArray(t1)
        image.CopyInformation(ct)
        sitk.WriteImage(image, str(ct_path).replace("_0000.nii.gz", "_0001.nii.gz"))
    spec = json.loads((raw_dir / "dataset.json").read_text())
    spec = {key: value for key, value in spec.items() if key != "case_channel_names"}
    spec["channel_names"] = {"0": "CT", "1": "T1"}
    (target / "dataset.json").write_text(json.dumps(spec))
    return target


def test_single_channel_pretraining_loads_into_a_two_channel_dataset(
        fresh_results: dict[str, str], example_raw_dir: Path, tmp_path: Path,
        tiny_planner) -> None:
    encoder = pretrain(DATASET, iterations=2, config_overrides=FAST[:2], device="cpu",
                       **fresh_results)
    name = "Dataset991_TwoChannel"
    raw = _two_channel_copy(example_raw_dir, tmp_path / "raw" / name)
    tiny_planner(raw, tmp_path / "preprocessed")
    roots = {"raw": str(tmp_path / "raw"), "preprocessed": str(tmp_path / "preprocessed"),
             "results": str(tmp_path / "results")}
    fold_dir = train_fold(name, 0, pretrain_choice=str(encoder), epochs=1, iterations_per_epoch=1,
                          config_overrides=FAST, validate=False, device="cpu", **roots)
    meta = load_checkpoint(fold_dir / "checkpoint_latest.pt")[1]
    assert meta["plan"]["architecture"]["in_channels"] == 2
    encoder_tensors = len(load_checkpoint(encoder)[0]["encoder"])
    assert meta["pretrained_transfer"]["loaded"] == encoder_tensors > 100
    assert meta["pretrained_transfer"]["adapted"] == 1  # the stem, inflated from 1 to 2 channels


def test_deep_supervision_fold_validates_and_predicts(fresh_results: dict[str, str],
                                                      example_raw_dir: Path) -> None:
    """The auxiliary heads are training-only: validation and predict use full-scale logits."""
    fold_dir = train_fold(DATASET, 0, pretrain_choice="none", epochs=1, iterations_per_epoch=1,
                          config_overrides=[*FAST, "deep_supervision=true",
                                            "validation_tta=false"], device="cpu",
                          **fresh_results)
    state = load_checkpoint(fold_dir / "checkpoint_final.pt")[0]["model"]
    assert any(key.startswith("decoder.aux_heads.") for key in state)
    summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
    assert summary["cases"]
    model = SegmentationModel.load(fold_dir.parent, folds=[0])
    image = sitk.ReadImage(str(next((example_raw_dir / "imagesTr").glob("ct_*_0000.nii.gz"))))
    labels = model.predict_image(image)
    assert labels.GetSize() == image.GetSize()
