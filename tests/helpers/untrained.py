"""Model folders with randomly initialised fold networks, in the exact trained-model format.

Prediction, export and deployment can be exercised before (or without) a training run: the tests
and the predict benchmarks (which load this file through ``bench_common.untrained_models``) build
their models here. The weights are random, so the segmentations are meaningless;
everything else (plan, preprocessing, geometry, file formats) is what a trained model gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from swinfuse_auto import __version__
from swinfuse_auto.dataset.modality import Modality
from swinfuse_auto.dataset.spec import parse_dataset_json
from swinfuse_auto.io.atomic import write_json
from swinfuse_auto.models.fold_model import fold_model_meta, save_fold_model
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.factory import build_segmentation_network
from swinfuse_auto.paths import FINAL_CHECKPOINT, fold_folder_name
from swinfuse_auto.plans.crop_rules import pretraining_crop_for
from swinfuse_auto.plans.schema import (SCHEMA_VERSION, ConfigurationPlan, NormalizationPlan, Plan,
                                        PretrainingPlan, TargetDevice)

#: Swin UNETR's fixed CT window, standing in for dataset statistics that were never computed.
CT_WINDOW = {"clip_low": -1000.0, "clip_high": 1000.0, "mean": 0.0, "std": 500.0}
UNTRAINED = "untrained"


def _normalization(modality: str) -> NormalizationPlan:
    if modality == Modality.CT.value:
        return NormalizationPlan("ct", False, dict(CT_WINDOW))
    return NormalizationPlan("zscore", modality == Modality.MR.value)


def untrained_plan(dataset_json: dict[str, Any], spacing: tuple[float, float, float],
                   patch_size: tuple[int, int, int], architecture: dict[str, Any] | None = None,
                   num_folds: int = 5) -> Plan:
    """A valid plan made without a fingerprint: fixed CT window, per-image z-score otherwise.

    Args:
        dataset_json: the dataset description (channels, labels).
        spacing: target spacing (z, y, x) in mm.
        patch_size: network input (z, y, x), every axis a multiple of 32.
        architecture: :class:`SwinArchitecture` fields overriding the defaults (feature size
            12, the CPU planner's choice); channels and classes come from ``dataset_json``.
        num_folds: recorded in the plan.

    Raises:
        PlanError: a patch or architecture the network cannot take.
        DatasetError: an invalid ``dataset_json``.
    """
    spec = parse_dataset_json(dataset_json, Path("dataset.json"))
    arch = SwinArchitecture(**{"in_channels": spec.num_channels,
                               "num_classes": spec.num_classes, "feature_size": 12,
                               **(architecture or {})})
    norms = [_normalization(m.value) for m in spec.modalities]
    patch = tuple(int(p) for p in patch_size)
    configuration = ConfigurationPlan(
        "3d_fullres", tuple(float(s) for s in spacing), patch, patch,  # type: ignore[arg-type]
        1, norms)
    pretraining = PretrainingPlan(1, 2, pretraining_crop_for(patch), modality_normalization={
        m.value: _normalization(m.value) for m in Modality})
    plan = Plan(SCHEMA_VERSION, str(dataset_json.get("name", "untrained")), UNTRAINED,
                __version__, TargetDevice("cpu", 4.0), configuration, arch, pretraining,
                num_folds, "nnunet_intensity",
                {"all": "hand-made plan for untrained models (tests, benchmarks)"})
    return Plan.from_dict(plan.to_dict())  # validates like a plans.json from disk


def write_untrained_model(model_dir: Path, plan: Plan, dataset_json: dict[str, Any],
                          folds: Sequence[int | str] = (0,), seed: int = 0) -> Path:
    """Write ``fold_X/checkpoint_final.pt`` of random networks, plans.json and dataset.json.

    Fold ``i`` of ``folds`` is initialised from ``seed + i`` (the global RNG is left as it was),
    so the folds differ and the same call gives the same weights.

    Returns:
        ``model_dir``.
    """
    model_dir = Path(model_dir)
    for index, fold in enumerate(folds):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + index)
            network = build_segmentation_network(plan.architecture)
        save_fold_model(model_dir / fold_folder_name(fold) / FINAL_CHECKPOINT,
                        network.state_dict(),
                        fold_model_meta(plan, dataset_json, fold, UNTRAINED, {}))
    plan.save(model_dir / "plans.json")
    write_json(model_dir / "dataset.json", dataset_json)
    return model_dir
