"""Upgrades of older plans.json files, one function per schema version step.

Each migration takes the dict of version N and returns version N+1, so a plan written by any
earlier release loads. There is only version 1 so far; the chain is here so that the first
incompatible change adds a function instead of special cases inside the loader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swinfuse_auto.errors import PlanError

CURRENT_VERSION = 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


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
