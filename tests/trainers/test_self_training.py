"""Self-training on the unlabelled MR of the example data: what it changes, and when.

* Before the switch epoch, a self-training run is bit-identical to one without it; the step
  budget is the same; only the epochs after the switch see pseudo-labelled cases.
* The pseudo-labels are exactly the cleaned predictions of the weights at the switch, for
  exactly the images of another modality, with unsure voxels ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from swinfuse_auto.api import train_fold
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.inference.fold_ensemble import EnsemblePredictor, PredictionSettings
from swinfuse_auto.models.unwrap import unwrap_model
from swinfuse_auto.networks.factory import build_segmentation_network
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import UNLABELLED_FOLDER, CaseStore
from swinfuse_auto.training import loop as loop_module
from swinfuse_auto.training.self_training import (IGNORE_LABEL, class_shares,
                                                  clean_pseudo_label)

DATASET = "Dataset990_SwinfuseExample"
# deep supervision on: the pseudo-labels must come from the full-scale output alone
FAST = ["num_workers=0", "amp=false", "validation_batches_per_epoch=0", "seed=3",
        "deep_supervision=true"]
CONFIDENCE = 0.6


def _train(roots: dict[str, str], choice: str, monkeypatch: pytest.MonkeyPatch
           ) -> tuple[Path, list[dict[str, torch.Tensor]]]:
    """Fold 0 for 2 x 2 steps; returns the fold folder and the weights after every epoch."""
    states: list[dict[str, torch.Tensor]] = []
    original = loop_module.TrainingLoop.save

    def save_and_record(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        states.append({k: v.clone() for k, v in unwrap_model(self.model).state_dict().items()})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(loop_module.TrainingLoop, "save", save_and_record)
    fold_dir = train_fold(DATASET, 0, pretrain_choice="none", epochs=2, iterations_per_epoch=2,
                          preset="shape_over_intensity", validate=False, device="cpu",
                          config_overrides=[*FAST, f"self_training={choice}",
                                            "self_training_fraction=0.5",
                                            f"pseudo_label_confidence={CONFIDENCE}"], **roots)
    monkeypatch.undo()
    return fold_dir, states


def test_self_training_changes_only_the_epochs_after_the_switch(
        tiny_roots: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    off_dir, off = _train({**tiny_roots, "results": str(tmp_path / "off")}, "off", monkeypatch)
    on_dir, on = _train({**tiny_roots, "results": str(tmp_path / "on")}, "on", monkeypatch)
    assert len(off) == len(on) == 2  # the same budget: 2 epochs of 2 steps
    for key in off[0]:
        assert torch.equal(off[0][key], on[0][key]), key  # identical up to the switch
    assert any(not torch.equal(off[1][k], on[1][k]) for k in off[1])  # different after it
    assert not (off_dir / "pseudo_labels").exists()
    log = json.loads((on_dir / "training_log.json").read_text())
    assert len(log["epochs"]) == 2
    assert {"loss", "dice_loss", "ce_loss"} <= set(log["epochs"][0])
    assert "dice" not in log["epochs"][0]  # a loss, not a Dice score

    pre = Path(tiny_roots["preprocessed"]) / DATASET
    images = CaseStore(pre / UNLABELLED_FOLDER)
    pseudo = on_dir / "pseudo_labels"
    stored = json.loads((pseudo / "pseudo_labels.json").read_text())
    assert sorted(stored["cases"]) == images.case_ids()  # every MR image, nothing else

    plan = Plan.load(pre / "plans.json")
    labelled = CaseStore(pre / "3d_fullres")
    shares = class_shares(labelled, _fold0_train_ids(pre), plan.architecture.num_classes)
    network = build_segmentation_network(plan.architecture, deep_supervision=True)
    network.load_state_dict(on[0])  # the weights at the switch
    network.deep_supervision = False
    ensemble = EnsemblePredictor([network.eval()], plan, {}, ["0"], torch.device("cpu"),
                                 PredictionSettings(mirror_axes=()), "image_zscore")
    for case_id in images.case_ids():
        data = np.array(images.load(case_id)[0])
        expected = clean_pseudo_label(ensemble.predict(data).numpy(), CONFIDENCE, shares)
        labels = np.load(pseudo / f"{case_id}_seg.npy")
        assert np.array_equal(labels, expected), case_id
        assert set(np.unique(labels)) <= {IGNORE_LABEL, *range(plan.architecture.num_classes)}


def test_self_training_on_without_other_modality_images_is_explained(
        tiny_roots: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swinfuse_auto.training import self_training

    monkeypatch.setattr(self_training, "other_modality_cases", lambda store, modalities: [])
    with pytest.raises(ConfigError, match="self_training=on"):
        train_fold(DATASET, 0, pretrain_choice="none", epochs=2, iterations_per_epoch=1,
                   validate=False, device="cpu",
                   config_overrides=[*FAST, "self_training=on"],
                   **{**tiny_roots, "results": str(tmp_path)})


def _fold0_train_ids(preprocessed: Path) -> list[str]:
    return json.loads((preprocessed / "splits_final.json").read_text())[0]["train"]


def test_background_is_ignored_where_an_organ_was_not_found() -> None:
    probabilities = np.zeros((3, 1, 4, 10), dtype=np.float32)
    probabilities[0] = 1.0  # confident background everywhere ...
    probabilities[:, 0, :, 2:4] = np.array([0.0, 1.0, 0.0])[:, None, None]  # organ of class 1
    shares = np.array([0.6, 0.2, 0.2])
    labels = clean_pseudo_label(probabilities, 0.8, shares)  # class 2 is missing
    assert (labels[0, :, 2:4] == 1).all()
    assert (labels[labels != 1] == IGNORE_LABEL).all()  # background no longer taught
    probabilities[:, 0, :, 6:8] = np.array([0.0, 0.0, 1.0])[:, None, None]  # class 2 as well
    labels = clean_pseudo_label(probabilities, 0.8, shares)
    assert (labels[0, :, 0] == 0).all()


def test_clean_pseudo_label_ignores_unsure_voxels_and_stray_blobs() -> None:
    probabilities = np.zeros((2, 1, 4, 10), dtype=np.float32)
    probabilities[0] = 1.0
    def set_column(x: slice | int, background: float) -> None:
        probabilities[0, 0, :, x], probabilities[1, 0, :, x] = background, 1.0 - background

    set_column(slice(1, 3), 0.1)  # the main blob of class 1
    set_column(8, 0.05)  # a stray blob of class 1
    set_column(5, 0.55)  # unsure
    labels = clean_pseudo_label(probabilities, confidence=0.8)
    assert (labels[0, :, 1:3] == 1).all()
    assert (labels[0, :, 8] == IGNORE_LABEL).all() and (labels[0, :, 5] == IGNORE_LABEL).all()
    assert (labels[0, :, 0] == 0).all()
