"""Fine-tuning: exact --continue after a kill, channel adaptation, argument errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from swinfuse_auto.api import train_fold
from swinfuse_auto.cli.train_fold import main as train_fold_main
from swinfuse_auto.training.checkpoint import load_checkpoint

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
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
