"""The demo command runs every stage end to end and reports its outputs.

It runs under a time budget far too short for the full training (half a minute), so it must
measure this machine's step time, say what it chose, and still train one epoch (of 2 steps here)
and a few pre-training steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from swinfuse_auto.cli.demo import main as demo_main


@pytest.mark.slow(seconds=100)
def test_demo_runs_every_stage_and_prints_the_dice_table(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert demo_main(["--output", str(out), "--ct-cases", "5", "--mr-cases", "2",
                      "--minutes", "0.5", "--iterations-per-epoch", "2", "-np", "1",
                      "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for stage in range(1, 7):
        assert f"[{stage}/6]" in printed
    for organ in ("liver", "spleen", "kidneys", "spine", "aorta", "mean"):
        assert any(line.startswith(organ) for line in printed.splitlines()), organ
    assert "time budget 0.5 min" in printed and "a fine-tuning step takes" in printed
    assert "budget: 2 pre-training steps, 1 x 2 fine-tuning steps" in printed
    overlays = sorted((out / "overlays").glob("*.png"))
    assert [p.name[:3] for p in overlays] == ["ct_", "mr_"]
    assert all(Image.open(p).size[0] > 0 for p in overlays)
    assert len(list((out / "predictions_mr").glob("mr_*.nii.gz"))) == 2
    fold_dir = out / "results" / "Dataset990_SwinfuseExample" / "swin_dim_finetune__default"
    assert (fold_dir / "fold_0" / "progress.png").is_file()
