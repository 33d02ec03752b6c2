"""Upgrades of older plans.json files, one function per schema version step.

Each migration takes the dict of version N and returns version N+1, so a plan written by any
earlier release loads. The loader only ever sees the current version.

* 1 -> 2: the pre-training crop became its own key (``pretraining.patch_size``), because the
  fine-tuning patch of a non-square field of view (32x96x128) cannot be rotated by 90 degrees,
  and the pre-training batch became at least 2 (contrastive coding needs a negative). The plan
  names the fine-tuning preset its data calls for (``finetuning_preset``); a schema-1 plan keeps
  the recipe it was trained with, ``nnunet_intensity``.
* 2 -> 3: the architecture's ``patch_size`` (the patch-embedding stride) is renamed
  ``patch_embed_stride``, so ``patch_size`` means a crop everywhere in the plan; and the
  pre-training block keeps what the data decides (iterations, batch, crop, normalisation per
  modality) and drops the optimisation (learning rate, weight decay, warm-up, contrastive
  temperature, density-matching weight), which the pre-training recipe's config holds
  (``pretrain --set``). A dropped value other than the recipe's default is logged with the
  ``--set`` that restores it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from swinfuse_auto.errors import PlanError
from swinfuse_auto.plans.crop_rules import pretraining_crop_for

CURRENT_VERSION = 3
logger = logging.getLogger(__name__)

#: Schema-2 pre-training keys that moved to the pre-training recipe's config: the ``--set`` key
#: of each, and the value every schema-2 planner wrote (the recipe's default since).
MOVED_TO_RECIPE = {"learning_rate": ("learning_rate", 4e-4),
                   "weight_decay": ("weight_decay", 0.1),
                   "warmup_iterations": ("max_warmup_iterations", 50),
                   "density_matching_weight": ("density_matching_weight", 1.0),
                   "contrastive_temperature": ("contrastive_temperature", 0.5)}
_warned: set[str] = set()


def _pretraining_crop_of_its_own(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: the fine-tuning patch (squared where it must be) becomes the crop."""
    try:
        patch = data["configuration"]["patch_size"]
        pretraining = dict(data["pretraining"])
    except (KeyError, TypeError) as exc:
        raise PlanError(f"schema_version 1 plan without {exc}; re-plan the dataset.") from None
    try:
        pretraining.setdefault("patch_size", list(pretraining_crop_for(patch)))
    except (TypeError, ValueError):
        pass  # a malformed configuration.patch_size is reported by the loader, with its path
    if isinstance(pretraining.get("batch_size"), int):
        pretraining["batch_size"] = max(2, pretraining["batch_size"])
    return {"finetuning_preset": "nnunet_intensity", **data, "pretraining": pretraining,
            "schema_version": 2}


def migrate_architecture(architecture: Any) -> Any:
    """A schema-2 architecture object with ``patch_embed_stride`` for ``patch_size``.

    Also used for the architecture block of encoder files written before schema 3.
    """
    if isinstance(architecture, dict) and "patch_size" in architecture:
        architecture = dict(architecture)
        architecture.setdefault("patch_embed_stride", architecture["patch_size"])
        del architecture["patch_size"]
    return architecture


def _optimisation_to_the_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 -> 3 (see the module notes)."""
    pretraining = data.get("pretraining")
    if isinstance(pretraining, dict):
        pretraining = dict(pretraining)
        for key, (setting, default) in MOVED_TO_RECIPE.items():
            if key in pretraining:
                value = pretraining.pop(key)
                if value != default:
                    _warn_once(f"plans.json pretraining.{key} is {value!r}, but from schema 3 "
                               "the plan no longer holds the optimisation of pre-training; it "
                               f"is ignored. Pass pretrain --set {setting}={value} to use it.")
    return {**data, "architecture": migrate_architecture(data.get("architecture")),
            "pretraining": pretraining, "schema_version": 3}


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("%s", message)


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _pretraining_crop_of_its_own, 2: _optimisation_to_the_recipe}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring ``data`` up to :data:`CURRENT_VERSION`."""
    if not isinstance(data, dict):
        raise PlanError("the plan must be a JSON object.")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise PlanError(f"schema_version: expected an integer, found {version!r}.")
    if version > CURRENT_VERSION:
        raise PlanError(f"schema_version {version} is newer than this swinfuse_auto understands "
                        f"({CURRENT_VERSION}); upgrade swinfuse_auto.")
    while version < CURRENT_VERSION:
        if version not in MIGRATIONS:
            raise PlanError(f"no migration from schema_version {version}; re-plan the dataset.")
        data = MIGRATIONS[version](data)
        version = data["schema_version"]
    return data
