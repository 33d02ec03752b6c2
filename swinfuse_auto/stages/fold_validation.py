"""End-of-fold validation: the held-out cases at full volume, mapped back to the raw grid, scored.

The cases are already preprocessed (the fold's store), so validation runs exactly the inference
of ``predict`` from that point on: sliding window with the plan's patch, Gaussian weighting and
mirroring, back to the raw geometry, and then the same metrics ``evaluate`` reports.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.evaluation.folder_eval import evaluate_folders
from swinfuse_auto.inference.fold_ensemble import EnsemblePredictor, PredictionSettings
from swinfuse_auto.inference.raw_grid import segmentation_to_raw
from swinfuse_auto.io.image import write_image
from swinfuse_auto.models.unwrap import unwrap_model
from swinfuse_auto.paths import VALIDATION_FOLDER
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.progress import Progress, start_progress
from swinfuse_auto.training.config import FinetuningConfig

logger = logging.getLogger(__name__)


def validate_fold(fold_dir: Path, raw_dir: Path, model: nn.Module, plan: Plan, store: CaseStore,
                  case_ids: list[str], config: FinetuningConfig, progress: Progress | None = None
                  ) -> dict[str, Any]:
    """Predict ``case_ids`` with ``model``, write ``validation/CASE.nii.gz`` and the summary."""
    network = unwrap_model(model)
    if getattr(network, "deep_supervision", False):
        network.deep_supervision = False  # sliding-window inference wants full-scale logits only
    device = next(network.parameters()).device
    settings = PredictionSettings(step_fraction=config.validation_step_fraction,
                                  mirror_axes=(0, 1, 2) if config.validation_tta else ())
    spec = load_dataset_spec(raw_dir)
    ensemble = EnsemblePredictor([network.eval()], plan, spec.raw, ["validation"], device,
                                 settings, config.input_scaling)
    folder = Path(fold_dir) / VALIDATION_FOLDER
    bar = start_progress(progress, "validation", len(case_ids), "case")
    try:
        for case_id in case_ids:
            data, _, properties = store.load(case_id)
            with torch.no_grad():
                probabilities = ensemble.predict(torch.from_numpy(data[:].copy()))
            labels = segmentation_to_raw(probabilities, properties, plan.configuration.spacing)
            write_image(labels, properties.geometry, folder / f"{case_id}{spec.file_ending}")
            bar.advance()
    finally:
        bar.close()
    names = {v: k for k, v in spec.labels.items()}
    summary = evaluate_folders(Path(raw_dir) / "labelsTr", folder, spec.foreground_labels,
                               file_ending=spec.file_ending, cases=case_ids, label_names=names)
    logger.info("fold validation: mean foreground Dice %.4f over %d cases",
                summary["foreground_mean"].get("dice", float("nan")), len(case_ids))
    return summary
