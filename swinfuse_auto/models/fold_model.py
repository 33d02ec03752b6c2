"""The trained-model file format shared by training (writer) and prediction (reader).

A fold model is a checkpoint (see :mod:`.checkpoint`) whose metadata holds everything inference
needs to rebuild the network and prepare data exactly as in training: the plan, dataset.json,
trainer name and config, the fold. Nothing refers to a Python class path, so moving code never
breaks an old model.

Where the files live is the results layout of :mod:`swinfuse_auto.paths`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.models.checkpoint import load_checkpoint, save_checkpoint
from swinfuse_auto.paths import FINAL_CHECKPOINT, fold_folder_name
from swinfuse_auto.plans.schema import Plan

FOLD_MODEL_KIND = "swinfuse_fold_model"
_FOLD_DIR = re.compile(r"^fold_(\d+|all)$")


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

    @property
    def input_features(self) -> str:
        """What the network was fed ("intensity" for models older than the key)."""
        return str(self.trainer_config.get("input_features", "intensity"))

    def build_network(self, device: torch.device | str = "cpu") -> nn.Module:
        """The segmentation network with these weights, in eval mode."""
        from swinfuse_auto.networks.factory import build_segmentation_network
        from swinfuse_auto.networks.unetr import AUX_HEADS_PREFIX

        # checkpoints of a deep-supervision run carry the auxiliary heads; they are built so
        # the weights match exactly, then switched off, since inference needs only full scale
        auxiliary = any(key.startswith(AUX_HEADS_PREFIX) for key in self.state_dict)
        network = build_segmentation_network(self.plan.architecture, deep_supervision=auxiliary,
                                             input_features=self.input_features)
        network.deep_supervision = False
        expected = network.state_dict()
        missing = [k for k in expected if k not in self.state_dict]
        unexpected = [k for k in self.state_dict if k not in expected]
        resized = [k for k in expected if k in self.state_dict
                   and self.state_dict[k].shape != expected[k].shape]
        if missing or unexpected or resized:
            raise CheckpointError(f"fold {self.fold} weights do not match the plan's network: "
                                  f"{len(missing)} missing, {len(unexpected)} unexpected and "
                                  f"{len(resized)} resized tensors (e.g. "
                                  f"{(missing or unexpected or resized)[:3]}). The model folder "
                                  "mixes files from different runs; retrain or restore it.")
        network.load_state_dict(self.state_dict)
        return network.to(device).eval()


def fold_model_meta(plan: Plan, dataset_json: dict[str, Any], fold: int | str, trainer: str,
                    trainer_config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The metadata that makes a checkpoint a fold model (``extra`` is kept for the record)."""
    return {"kind": FOLD_MODEL_KIND, "plan": plan.to_dict(), "dataset_json": dataset_json,
            "fold": str(fold), "trainer": trainer, "trainer_config": trainer_config, **extra}


def save_fold_model(path: Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]
                    ) -> None:
    """Write a fold model: ``state_dict`` plus ``meta`` from :func:`fold_model_meta`."""
    if meta.get("kind") != FOLD_MODEL_KIND:
        raise ValueError("save_fold_model needs the metadata of fold_model_meta()")
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


def _fold_sort_key(name: str) -> tuple[int, int]:
    return (1, 0) if name == "all" else (0, int(name))


def trained_folds(model_dir: Path) -> list[str]:
    """Folds of ``model_dir`` that finished training (their ``checkpoint_final.pt`` exists)."""
    if not Path(model_dir).is_dir():
        return []
    folds = [match[1] for path in Path(model_dir).iterdir()
             if (match := _FOLD_DIR.match(path.name)) and (path / FINAL_CHECKPOINT).is_file()]
    return sorted(folds, key=_fold_sort_key)


def _describe_model_dir(model_dir: Path) -> str:
    if not model_dir.is_dir():
        return f"{model_dir} does not exist"
    found = []
    for fold_dir in sorted(p for p in model_dir.iterdir() if _FOLD_DIR.match(p.name)):
        files = sorted(p.name for p in fold_dir.glob("checkpoint_*.pt"))
        found.append(f"{fold_dir.name} ({', '.join(files) or 'no checkpoints'})")
    return "found: " + ("; ".join(found) if found else "no fold_* folders")


def fold_checkpoints(model_dir: Path, folds: Sequence[int | str] | None = None) -> list[Path]:
    """The ``checkpoint_final.pt`` of each requested fold (default: every trained fold).

    Only final checkpoints are used: a best or latest checkpoint belongs to an unfinished run.

    Raises:
        CheckpointError: no trained fold, or a requested fold without a final checkpoint; the
            message lists what the folder holds.
    """
    model_dir = Path(model_dir)
    available = trained_folds(model_dir)
    wanted = [str(f) for f in folds] if folds else available
    missing = [f for f in wanted if f not in available]
    if not wanted or missing:
        what = f"fold(s) {', '.join(missing)} have" if missing else "no fold has"
        raise CheckpointError(
            f"In {model_dir}, {what} no {FINAL_CHECKPOINT} ({_describe_model_dir(model_dir)}). "
            "Finish training with train_fold (or --continue), or choose trained folds with -f.")
    return [model_dir / fold_folder_name(f) / FINAL_CHECKPOINT for f in wanted]
