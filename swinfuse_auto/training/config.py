"""Trainer configuration: recipe values that do not depend on the data.

Defaults live in code (each recipe in ``trainers/`` sets its own); a user overrides them with
``--set key=value`` or a JSON file, never by subclassing. The resolved config is stored in the run
folder and in every checkpoint so that ``--continue`` and inference rebuild exactly the same run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swinfuse_auto.errors import ConfigError, PlanError
from swinfuse_auto.plans.typed_json import from_jsonable, to_jsonable


@dataclass(frozen=True)
class TrainerConfig:
    """Hyper-parameters of one training recipe.

    Args:
        epochs: number of epochs; 0 means "take the plan's budget" for pre-training.
        iterations_per_epoch: optimiser steps per epoch (an epoch is the checkpoint interval).
        learning_rate: base learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup_fraction: share of all steps spent warming up linearly.
        grad_clip: gradient-norm clip (None to disable).
        num_workers: background processes preparing batches.
        seed: seed of the batches, the initial weights and the augmentation.
        amp: bf16 autocast on GPUs (ignored on the CPU).
        compile: wrap the network with torch.compile.
        foreground_oversampling: share of each batch centred on a labelled voxel.
        deep_supervision: add lower-resolution Dice+CE terms.
        validation_batches_per_epoch: validation patches scored each epoch (pseudo-Dice).
        validation_step_fraction: sliding-window step of the end-of-fold validation.
        validation_tta: mirror test-time augmentation in the end-of-fold validation.
    """

    epochs: int = 0
    iterations_per_epoch: int = 50
    learning_rate: float = 4e-4
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    grad_clip: float | None = 12.0
    num_workers: int = 2
    seed: int = 12345
    amp: bool = True
    compile: bool = False
    foreground_oversampling: float = 0.33
    deep_supervision: bool = False
    validation_batches_per_epoch: int = 4
    validation_step_fraction: float = 0.5
    validation_tta: bool = True

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerConfig:
        try:
            return from_jsonable(cls, data, "trainer_config")
        except PlanError as exc:
            raise ConfigError(str(exc)) from None

    def with_overrides(self, overrides: list[str] | None = None,
                       json_file: str | Path | None = None) -> TrainerConfig:
        """Apply a JSON file, then ``key=value`` strings (values parsed as JSON when possible)."""
        data = self.to_dict()
        if json_file:
            try:
                data.update(json.loads(Path(json_file).read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"cannot read trainer config {json_file}: {exc}") from None
        valid = {f.name for f in dataclasses.fields(self)}
        for item in overrides or []:
            key, sep, text = item.partition("=")
            if not sep or key not in valid:
                raise ConfigError(f"--set expects KEY=VALUE with KEY one of {sorted(valid)}, "
                                  f"found '{item}'.")
            try:
                data[key] = json.loads(text)
            except json.JSONDecodeError:
                data[key] = text
        return TrainerConfig.from_dict(data)
