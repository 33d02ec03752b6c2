"""Upgrades of older plans.json files, one function per schema version step.

Each migration takes the dict of version N and returns version N+1, so a plan written by any
earlier release loads. The loader only ever sees the current version.

* 1 -> 2: the pre-training crop became its own key (``pretraining.patch_size``), because the
  fine-tuning patch of a non-square field of view (32x96x128) cannot be rotated by 90 degrees,
  and the pre-training batch became at least 2 (contrastive coding needs a negative). The plan
  names the fine-tuning preset its data calls for (``finetuning_preset``); a schema-1 plan keeps
  the recipe it was trained with, ``nnunet_intensity``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swinfuse_auto.errors import PlanError
from swinfuse_auto.plans.crop_rules import pretraining_crop_for

CURRENT_VERSION = 2


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


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _pretraining_crop_of_its_own}


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
