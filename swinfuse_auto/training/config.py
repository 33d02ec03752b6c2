"""Recipe configuration: the training values that do not depend on the data, one class per stage.

Defaults live in code (each recipe in ``trainers/`` sets its own); a user overrides them with
``--set key=value`` or a JSON file, never by subclassing. Each stage has its own config class, so
the keys a command accepts are exactly the settings its recipe reads: a key of the other stage
(``pretrain --set deep_supervision=true``) is refused with the list of accepted keys instead of
being ignored. The resolved config is stored in the run folder and in every checkpoint so that
``--continue`` and inference rebuild exactly the same run.

The plan (``plans.json``) holds what the data decides; the optimisation (learning rate, weight
decay, warm-up, the pre-training loss weights) is here, in one place.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from swinfuse_auto.data.augmentation import AugmentationConfig
from swinfuse_auto.errors import ConfigError, PlanError
from swinfuse_auto.networks.input_features import INPUT_FEATURES
from swinfuse_auto.preprocessing.input_scaling import INPUT_SCALINGS
from swinfuse_auto.typed_json import from_jsonable, to_jsonable

#: ``self_training`` values: on when the dataset has images of another modality, always, never.
SELF_TRAINING_CHOICES = ("auto", "on", "off")
#: The step counts of a config: None takes the recipe's default, anything else must be >= 1.
BUDGET_FIELDS = ("epochs", "iterations_per_epoch")
_BUDGET_FIX = {
    "epochs": "Pass --epochs N (train_fold) or --set epochs=N with N >= 1",
    "iterations_per_epoch": ("Pass --iterations-per-epoch N (train_fold) or --set "
                             "iterations_per_epoch=N with N >= 1"),
}
C = TypeVar("C", bound="TrainerConfig")


def require_positive(what: str, value: int | None, fix: str) -> None:
    """Refuse a step count below 1 (None, "not set", is fine).

    Zero or a negative count would run no optimiser step and still save a "final" checkpoint of
    an untrained network that predict and export_model would then use without complaint.

    Raises:
        ConfigError: naming ``what``, the value and ``fix``.
    """
    if value is not None and value < 1:
        raise ConfigError(f"{what} is {value}, but it must be at least 1: with {value} nothing "
                          "would be trained, yet a final checkpoint of the untrained network "
                          f"would be written. {fix}, or leave it out to take the default.")


def _require_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"trainer config '{name}' is {value}; expected a fraction in [0, 1).")


@dataclass(frozen=True)
class TrainerConfig:
    """The settings every recipe has: the optimiser, its schedule and the loop.

    Args:
        iterations_per_epoch: optimiser steps per epoch (an epoch is the checkpoint interval);
            None takes the recipe's default.
        learning_rate: base learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup_fraction: share of all steps spent warming up linearly.
        grad_clip: gradient-norm clip (None to disable).
        num_workers: background processes preparing batches.
        seed: seed of the batches, the initial weights and the augmentation.
        amp: bf16 autocast on GPUs (ignored on the CPU).
        compile: wrap the network with torch.compile.
    """

    iterations_per_epoch: int | None = 50
    learning_rate: float = 4e-4
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    grad_clip: float | None = 12.0
    num_workers: int = 2
    seed: int = 12345
    amp: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        # Every way of setting a budget (recipe default, --epochs, --set, a JSON file, a stored
        # config) builds a config, so this is the one place that refuses a bad one.
        for name in BUDGET_FIELDS:
            if hasattr(self, name):
                require_positive(f"trainer config '{name}'", getattr(self, name),
                                 _BUDGET_FIX[name])

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        try:
            return from_jsonable(cls, data, "trainer_config")
        except PlanError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def setting_names(cls) -> list[str]:
        """Every key ``--set`` accepts; nested settings as ``augmentation.NAME``."""
        hints = typing.get_type_hints(cls)
        names = []
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                names += [f"{f.name}.{sub.name}" for sub in dataclasses.fields(hints[f.name])]
            else:
                names.append(f.name)
        return sorted(names)

    def with_overrides(self: C, overrides: list[str] | None = None,
                       json_file: str | Path | None = None, where: str = "--set",
                       accepted: Sequence[str] | None = None) -> C:
        """Apply a JSON file, then ``key=value`` strings (values parsed as JSON when possible).

        Args:
            where: how the user gave the strings, for messages ("pretrain --set").
            accepted: the keys that may be set (default: every setting of this class); a
                recipe passes the ones it reads.

        Raises:
            ConfigError: a string without "=", a key this config does not have (the message
                lists the accepted keys and names the stage a key belongs to), a value of the
                wrong type or out of range.
        """
        data = self.to_dict()
        if json_file:
            try:
                data.update(json.loads(Path(json_file).read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"cannot read trainer config {json_file}: {exc}") from None
        accepted = list(accepted if accepted is not None else self.setting_names())
        for item in overrides or []:
            key, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"{where} {item}: expected KEY=VALUE, e.g. {where} "
                                  "learning_rate=1e-3.")
            if key not in accepted:
                raise ConfigError(_unknown_setting(type(self), key, item, where, accepted))
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            *parents, leaf = key.split(".")
            node = data
            for parent in parents:
                node = node[parent]
            node[leaf] = value
        return type(self).from_dict(data)


@dataclass(frozen=True)
class FinetuningConfig(TrainerConfig):
    """Settings of a fine-tuning recipe (``train_fold --set``), beyond :class:`TrainerConfig`.

    Args:
        epochs: number of epochs; None takes the recipe's default (by device).
        foreground_oversampling: share of each batch centred on a labelled voxel.
        deep_supervision: add lower-resolution Dice+CE terms.
        validation_batches_per_epoch: validation patches scored each epoch (pseudo-Dice).
        validation_step_fraction: sliding-window step of the end-of-fold validation.
        validation_tta: mirror test-time augmentation in the end-of-fold validation.
        input_scaling: registered scaling of each preprocessed volume before the network
            ("plan": none; "image_zscore": each image z-scored by its own statistics).
        input_features: registered first stage of the network (``networks/input_features``):
            "intensity" (the image) or "mind_ssc" (its modality-independent descriptor).
        augmentation: every probability and range of the training augmentation
            (``--set augmentation.gin_probability=0.5``).
        self_training: use the unlabelled images of another modality (imagesTs) with
            pseudo-labels: "auto" when the dataset has such images, "on" (error without them)
            or "off".
        self_training_fraction: share of the steps, at the end, that also train on them.
        pseudo_label_confidence: softmax probability below which a pseudo-label voxel is
            ignored by the loss.
    """

    epochs: int | None = None
    foreground_oversampling: float = 0.33
    deep_supervision: bool = False
    validation_batches_per_epoch: int = 4
    validation_step_fraction: float = 0.5
    validation_tta: bool = True
    input_scaling: str = "plan"
    input_features: str = "intensity"
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    self_training: str = "off"
    self_training_fraction: float = 0.4
    pseudo_label_confidence: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        INPUT_SCALINGS.get(self.input_scaling)  # an unknown name lists the valid ones
        INPUT_FEATURES.get(self.input_features)
        if self.self_training not in SELF_TRAINING_CHOICES:
            raise ConfigError(f"trainer config 'self_training' is {self.self_training!r}; "
                              f"expected one of {', '.join(SELF_TRAINING_CHOICES)}.")
        for name in ("self_training_fraction", "pseudo_label_confidence"):
            _require_fraction(name, getattr(self, name))

    def budget(self, default_epochs: int, default_iterations_per_epoch: int) -> tuple[int, int]:
        """(epochs, iterations per epoch), the recipe's defaults standing in for unset values.

        Unset is None only: an explicit value is never replaced, so a typo cannot silently turn
        into a full-length default run.
        """
        epochs = default_epochs if self.epochs is None else self.epochs
        per_epoch = (default_iterations_per_epoch if self.iterations_per_epoch is None
                     else self.iterations_per_epoch)
        return epochs, per_epoch


@dataclass(frozen=True)
class PretrainingConfig(TrainerConfig):
    """Settings of a pre-training recipe (``pretrain --set``), beyond :class:`TrainerConfig`.

    The budget (iterations), batch and crop are the plan's (``pretraining`` in plans.json):
    they follow from the data and the device. The optimisation is here.

    Args:
        max_warmup_iterations: the warm-up lasts ``warmup_fraction`` of the steps, at most
            this many.
        contrastive_temperature: NT-Xent temperature (Tang et al.: 0.5).
        density_matching_weight: weight of the CT/MR density-matching term (the paper sums the
            four losses: 1); 0 switches it off.
    """

    max_warmup_iterations: int = 50
    contrastive_temperature: float = 0.5
    density_matching_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_warmup_iterations < 0:
            raise ConfigError(f"trainer config 'max_warmup_iterations' is "
                              f"{self.max_warmup_iterations}; expected 0 or more.")
        if not self.contrastive_temperature > 0:
            raise ConfigError(f"trainer config 'contrastive_temperature' is "
                              f"{self.contrastive_temperature}; expected a positive number.")
        if not (math.isfinite(self.density_matching_weight)
                and self.density_matching_weight >= 0):
            raise ConfigError(f"trainer config 'density_matching_weight' is "
                              f"{self.density_matching_weight}; expected a number >= 0.")

    def warmup_steps(self, total: int) -> int:
        """``warmup_fraction`` of ``total`` steps (at least 1), at most ``max_warmup_iterations``."""
        return min(self.max_warmup_iterations, int(self.warmup_fraction * total) or 1)


#: Each stage's config class, for messages about a key of the other stage.
STAGE_CONFIGS: dict[str, type[TrainerConfig]] = {
    "fine-tuning (train_fold --set)": FinetuningConfig,
    "pre-training (pretrain --set)": PretrainingConfig}


def _unknown_setting(config: type[TrainerConfig], key: str, item: str, where: str,
                     accepted: list[str]) -> str:
    """Why ``key`` is refused: a setting of the other stage, or no setting (did you mean)."""
    owners = [stage for stage, other in STAGE_CONFIGS.items()
              if not issubclass(config, other) and key in other.setting_names()]
    if owners:
        why = (f"'{key}' is a setting of {owners[0]}; this recipe would ignore it, so it is "
               "refused.")
    else:
        close = difflib.get_close_matches(key, accepted, n=1)
        why = f"'{key}' is not a setting." + (f" Did you mean '{close[0]}'?" if close else "")
    return f"{where} {item}: {why} Accepted keys: {', '.join(accepted)}."


@dataclass(frozen=True)
class TrainerPreset:
    """Named settings of one recipe: a variant is a preset, never a subclass.

    Args:
        recipe: the registered trainer the preset is for.
        settings: ``--set`` keys and values, applied before the user's own ``--set``.
        description: one line for ``-h`` and the plan's reasons.
    """

    recipe: str
    settings: dict[str, Any]
    description: str = ""

    def overrides(self) -> list[str]:
        """The settings as ``KEY=VALUE`` strings for :meth:`TrainerConfig.with_overrides`."""
        return [f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                for key, value in self.settings.items()]
