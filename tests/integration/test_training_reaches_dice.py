"""A short CPU fine-tuning on the example data segments every organ far above chance.

Chance here is the best a prediction can do without looking at the image: labelling the whole
volume as organ k gives Dice 2 p_k / (1 + p_k), where p_k is the organ's share of the voxels,
and any image-blind random labelling does worse. The test computes that bound from the reference
labels and requires each organ's full-volume validation Dice (the one train_fold writes) to be
at least THRESHOLD and at least CHANCE_FACTOR times its bound. On the test data the bounds are
liver 0.093, spleen 0.012, kidneys 0.015, spine 0.026 and aorta 0.013, so 0.5 is over 5 times
the largest and 40 times the smallest: no labelling that ignores the image, and no network that
has not learnt that organ, gets there. With the default seed 12345 and the preset the plan names
for this dataset (modality_independent: MIND-SSC in, since imagesTs holds MR), the run reached
CT 0.848-0.886 on every organ (0.925-0.983 with intensities in, nnunet_intensity) and, on the MR
cases nobody trained on, liver 0.853, kidneys 0.508, aorta 0.809, spine 0.455, spleen 0.209
(with intensities in: liver 0.51-0.73 per case, every other organ 0.00).

The budget is what it takes on this data, measured on the 2-core VM (2026-11-27): feature size
12, deep supervision, learning rate 1e-2, 24 x 25 steps of batch 2. Small organs are learnt
last and the order depends on the seed: at 16 x 25 steps seed 0 reached 0.93-0.98 on every organ
but seed 7 still had the spleen and kidneys near 0.0; at 24 x 25 seed 7 reached 0.94-0.98 on all.
The feature-6 network of the other tests learnt only the liver and spine in 300 steps (on a
first variant of the portal-venous phantom).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from swinfuse_auto.api import load_model, predict_folder, train_fold
from swinfuse_auto.evaluation.metrics import dice as dice_score
from swinfuse_auto.paths import PLANS_FILE
from swinfuse_auto.plans.schema import Plan

pytestmark = pytest.mark.slow(seconds=420)

DATASET = "Dataset990_SwinfuseExample"
THRESHOLD = 0.5
MR_THRESHOLD = 0.25
CHANCE_FACTOR = 3.0
FEATURE_SIZE = 12


def chance_dice(label_files: list[Path], label: int) -> float:
    """Dice of predicting ``label`` everywhere, 2p / (1 + p), pooled over ``label_files``."""
    voxels = [sitk.GetArrayFromImage(sitk.ReadImage(str(path))) for path in label_files]
    share = sum(int((v == label).sum()) for v in voxels) / sum(v.size for v in voxels)
    return 2 * share / (1 + share)


def _wider_network_copy(roots: dict[str, str], target: Path) -> str:
    """A copy of the tiny preprocessed dataset whose plan has feature size FEATURE_SIZE."""
    preprocessed = Path(shutil.copytree(roots["preprocessed"], target))
    plan_file = preprocessed / DATASET / PLANS_FILE
    plan = Plan.load(plan_file)
    wider = dataclasses.replace(plan.architecture, feature_size=FEATURE_SIZE)
    dataclasses.replace(plan, architecture=wider).save(plan_file)
    return str(preprocessed)


def _assert_far_above_chance(dice: dict[int, float], label_files: list[Path],
                             labels: list[int], threshold: float = THRESHOLD) -> None:
    for label in labels:
        bound = chance_dice(label_files, label)
        assert dice[label] >= max(threshold, CHANCE_FACTOR * bound), (label, dice[label], bound)


def _mr_dice(fold_dir: Path, raw: Path, out: Path) -> dict[int, float]:
    """Mean Dice per organ of the fold's model on the MR cases of imagesTs (labelsTs)."""
    model = load_model(fold_dir.parent, folds=[0], device="cpu", tta=False)
    predict_folder(raw / "imagesTs", out, model)
    files = sorted((raw / "labelsTs").glob("*.nii.gz"))
    return {label: float(np.mean([dice_score(_read(out / f.name), _read(f), label)
                                  for f in files])) for label in (1, 2, 3, 4, 5)}


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_short_fine_tuning_segments_every_organ_and_the_mr_liver_and_kidneys_above_chance(
        fresh_results: dict[str, str], tmp_path: Path) -> None:
    """CT: every organ of the validation cases. MR (the out-of-modality claim, test-sized): the
    CT model on the 4 MR cases of imagesTs that nobody trained on, liver and kidneys at least
    max(MR_THRESHOLD, CHANCE_FACTOR x chance): chance (labelling the whole MR volume as the
    organ) is 0.081 for the liver and 0.014 for the kidneys, so the bound is 0.25 for both, 3
    and 18 times chance. Measured: liver 0.853, kidneys 0.508."""
    roots = {**fresh_results,
             "preprocessed": _wider_network_copy(fresh_results, tmp_path / "preprocessed")}
    fold_dir = train_fold(DATASET, 0, pretrain_choice="none", epochs=24, iterations_per_epoch=25,
                          device="cpu", config_overrides=[
                              "num_workers=1", "learning_rate=1e-2", "deep_supervision=true",
                              "validation_tta=false"], **roots)
    summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
    raw = Path(roots["raw"]) / DATASET
    files = [raw / "labelsTr" / f"{case}.nii.gz" for case in summary["cases"]]
    assert files
    dice = {int(label): m["dice"] for label, m in summary["mean"].items()}
    print("CT", {label: round(value, 3) for label, value in dice.items()})
    assert sorted(dice) == [1, 2, 3, 4, 5]
    _assert_far_above_chance(dice, files, [1, 2, 3, 4, 5])

    mr_dice = _mr_dice(fold_dir, raw, tmp_path / "mr")
    print("MR", {label: round(value, 3) for label, value in mr_dice.items()})
    _assert_far_above_chance(mr_dice, sorted((raw / "labelsTs").glob("*.nii.gz")), [1, 3],
                             MR_THRESHOLD)
