"""The trained-model file format shared by training (writer) and prediction (reader).

A fold model is a checkpoint (see :mod:`.checkpoint`) whose metadata holds everything inference
needs to rebuild the network and prepare data exactly as in training: the plan, dataset.json,
trainer name and config, the fold. Nothing refers to a Python class path, so moving code never
breaks an old model.

Results layout (``SWINFUSE_RESULTS``)::

    DatasetXXX_Name/
      pretrain__<planner>/            shared pre-trained encoder (pretrained_encoder.pt)
      <trainer>__<planner>/           one model folder per trainer and plan
        plans.json, dataset.json, trainer_config.json
        postprocessing.json           written by summarize_cv
        fold_0/ ... fold_all/
          checkpoint_latest.pt, checkpoint_best.pt, checkpoint_final.pt
          training_log.json, progress.png
          validation/CASE.nii.gz, validation/summary.json
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.training.checkpoint import load_checkpoint, save_checkpoint

FOLD_MODEL_KIND = "swinfuse_fold_model"
FINAL_CHECKPOINT = "checkpoint_final.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"
LATEST_CHECKPOINT = "checkpoint_latest.pt"


def model_folder_name(trainer: str, planner: str) -> str:
    return f"{trainer}__{planner}"


def fold_folder_name(fold: int | str) -> str:
    return f"fold_{fold}"


@dataclass(frozen=True)
class FoldModel:
    """A trained fold: its weights plus the plan and dataset description it was trained with."""

    plan: Plan
    dataset_json: dict[str, Any]
    fold: str
    trainer: str
    trainer_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]

    @property
    def input_scaling(self) -> str:
        """The input scaling the fold was trained with ("plan" for models older than the key)."""
        return str(self.trainer_config.get("input_scaling", "plan"))

    def build_network(self, device: torch.device | str = "cpu") -> nn.Module:
        """The segmentation network with these weights, in eval mode."""
        from swinfuse_auto.networks.factory import build_segmentation_network
        from swinfuse_auto.networks.unetr import AUX_HEADS_PREFIX

        # checkpoints of a deep-supervision run carry the auxiliary heads; they are built so
        # the weights match exactly, then switched off, since inference needs only full scale
        auxiliary = any(key.startswith(AUX_HEADS_PREFIX) for key in self.state_dict)
        network = build_segmentation_network(self.plan.architecture, deep_supervision=auxiliary)
        network.deep_supervision = False
        missing, unexpected = network.load_state_dict(self.state_dict, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"fold {self.fold} weights do not match the plan's network: "
                                  f"{len(missing)} missing, {len(unexpected)} unexpected tensors "
                                  f"(e.g. {(missing or unexpected)[:3]}). The model folder mixes "
                                  "files from different runs; retrain or restore it.")
        return network.to(device).eval()


def save_fold_model(path: Path, state_dict: dict[str, torch.Tensor], plan: Plan,
                    dataset_json: dict[str, Any], fold: int | str, trainer: str,
                    trainer_config: dict[str, Any], extra_meta: dict[str, Any] | None = None
                    ) -> None:
    meta = {"kind": FOLD_MODEL_KIND, "plan": plan.to_dict(), "dataset_json": dataset_json,
            "fold": str(fold), "trainer": trainer, "trainer_config": trainer_config,
            **(extra_meta or {})}
    save_checkpoint(path, {"model": state_dict}, meta)


def load_fold_model(path: Path, map_location: str | torch.device = "cpu") -> FoldModel:
    """Read a fold model (``weights_only=True``); any checkpoint of the training loop works too."""
    tensors, meta = load_checkpoint(path, map_location)
    if meta.get("kind") != FOLD_MODEL_KIND or "model" not in tensors:
        raise CheckpointError(f"{path} is not a swinfuse_auto fold model (kind "
                              f"{meta.get('kind')!r}). Point to a fold_X/checkpoint_final.pt.")
    return FoldModel(Plan.from_dict(meta["plan"]), meta["dataset_json"], str(meta["fold"]),
                     str(meta["trainer"]), dict(meta.get("trainer_config", {})),
                     tensors["model"])
