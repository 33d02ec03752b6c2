"""torchrun with 2 CPU processes (gloo): pre-training and fine-tuning train, rank 0 alone writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swinfuse_auto.models.checkpoint import load_checkpoint

DATASET = "Dataset990_SwinfuseExample"
FAST = ["num_workers=0", "amp=false", "validation_batches_per_epoch=1"]


@pytest.mark.slow(seconds=40)
def test_two_process_ddp_pretrains_fine_tunes_and_writes_one_set_of_outputs(
        tiny_roots: dict[str, str], tmp_path: Path) -> None:
    results = tmp_path / "results"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "swinfuse_auto", "train_fold", DATASET, "0",
               "--pretrain", "auto", "--epochs", "2", "--iterations-per-epoch", "2",
               "--device", "cpu", "--no-progress", "--preset", "cross_modality",
               "--raw", tiny_roots["raw"],
               "--preprocessed", tiny_roots["preprocessed"], "--results", str(results)]
    command += [item for option in FAST for item in ("--set", option)]
    # one thread per rank: two ranks on a 2-core machine
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]

    dataset_dir = results / DATASET
    assert sorted(p.name for p in dataset_dir.iterdir()) == ["pretrain__default",
                                                             "swin_dim_finetune__default"]
    fold_dir = dataset_dir / "swin_dim_finetune__default" / "fold_0"
    written = sorted(str(p.relative_to(fold_dir)) for p in fold_dir.rglob("*") if p.is_file())
    validation = [name for name in written if name.startswith("validation")]
    # the cross_modality preset self-trains on the example data's MR images: one set of
    # pseudo-labels, written by rank 0 and read by both
    pseudo = [name for name in written if name.startswith("pseudo_labels")]
    assert sorted(set(written) - set(validation) - set(pseudo)) == [
        "checkpoint_best.pt", "checkpoint_final.pt", "checkpoint_latest.pt", "progress.png",
        "training_log.json"]
    assert "validation/summary.json" in validation
    mr_cases = sorted(p.name[:-len("_0000.nii.gz")]
                      for p in (Path(tiny_roots["raw"]) / DATASET / "imagesTs").iterdir())
    assert pseudo == sorted(["pseudo_labels/pseudo_labels.json"]
                            + [f"pseudo_labels/{c}_{part}" for c in mr_cases
                               for part in ("locations.npz", "seg.npy")])
    log = json.loads((fold_dir / "training_log.json").read_text())
    assert len(log["epochs"]) == 2  # one log, not one per rank appended together
    pretrain_dir = dataset_dir / "pretrain__default"
    assert (pretrain_dir / "pretrained_encoder.pt").is_file()
    assert not [p for p in dataset_dir.rglob("*") if ".tmp" in p.name or "rank" in p.name]
    meta = load_checkpoint(fold_dir / "checkpoint_latest.pt")[1]
    assert meta["world_size"] == 2
