"""A short CPU fine-tuning on the example data segments the liver far above chance.

Chance here is the best a prediction can do without looking at the image: labelling the whole
volume as organ k gives Dice 2 p_k / (1 + p_k), where p_k is the organ's share of the voxels,
and any image-blind random labelling does worse. The test computes that bound from the reference
labels and requires the full-volume validation Dice (the one train_fold writes) to be at least
THRESHOLD and at least CHANCE_FACTOR times the bound (the liver's is about 0.09).

Only the liver is asserted: 150 steps of the test-sized network (feature size 6) learn it (Dice
0.84 and 0.87 in two runs) but not always the small organs (kidneys and spleen 0.0 in one). The demo-sized
network after 480 steps (benchmarks/ood.py) reaches 0.86-0.97 on every organ but the spleen,
which stays at 0.0 there too: it differs from liver and bowel by 10-20 HU, less than the noise.
Every-organ coverage in a test-sized budget is still open (issue 4).
"""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from swinfuse_auto.api import train_fold

DATASET = "Dataset990_SwinfuseExample"
THRESHOLD = 0.5
CHANCE_FACTOR = 3.0
LIVER = 1


def chance_dice(label_files: list[Path], label: int) -> float:
    """Dice of predicting ``label`` everywhere, 2p / (1 + p), pooled over ``label_files``."""
    voxels = [sitk.GetArrayFromImage(sitk.ReadImage(str(path))) for path in label_files]
    share = sum(int((v == label).sum()) for v in voxels) / sum(v.size for v in voxels)
    return 2 * share / (1 + share)


def test_short_fine_tuning_segments_the_liver_far_above_chance(
        fresh_results: dict[str, str]) -> None:
    fold_dir = train_fold(DATASET, 0, pretrain_choice="none", epochs=6, iterations_per_epoch=25,
                          device="cpu", config_overrides=["num_workers=1", "learning_rate=3e-3",
                                                          "validation_tta=false"],
                          **fresh_results)
    summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
    labels_dir = Path(fresh_results["raw"]) / DATASET / "labelsTr"
    files = [labels_dir / f"{case}.nii.gz" for case in summary["cases"]]
    assert files
    dice, bound = summary["mean"][str(LIVER)]["dice"], chance_dice(files, LIVER)
    print({label: round(m["dice"], 3) for label, m in summary["mean"].items()})
    assert dice >= max(THRESHOLD, CHANCE_FACTOR * bound), (dice, bound)
