"""Before a training stage starts: can its results folder take the checkpoints it will write?

The estimate needs the plan's network (its parameter count), so it lives above plans and
networks rather than in :mod:`swinfuse_auto.io.output_checks`, which only checks locations.
"""

from __future__ import annotations

import os

from swinfuse_auto.io.output_checks import check_output_location
from swinfuse_auto.networks.cost_model import count_parameters
from swinfuse_auto.paths import PLANS_FILE, resolve_dataset
from swinfuse_auto.plans.schema import Plan

#: A training run keeps three checkpoints (latest, best, final) holding the weights and the
#: two AdamW moments, 4 bytes each.
_CHECKPOINTS, _TENSORS_PER_PARAMETER, _BYTES_PER_VALUE = 3, 3, 4


def training_bytes(parameters: int) -> int:
    """Rough size of a training run's checkpoints for a network of ``parameters`` weights."""
    return parameters * _TENSORS_PER_PARAMETER * _BYTES_PER_VALUE * _CHECKPOINTS


def check_training_output(dataset: str | os.PathLike[str], raw: str | None,
                          preprocessed: str | None, results: str | None) -> None:
    """``pretrain`` and ``train_fold``: the dataset's results folder is writable and has room
    for the checkpoints of the planned network.

    Raises:
        ConfigError / DatasetError / PlanError: as the stage itself would (roots not set,
            dataset or plans.json missing), or the results folder is unusable.
    """
    location = resolve_dataset(dataset, raw=raw, preprocessed=preprocessed, results=results,
                               require=("preprocessed", "results"))
    assert location.preprocessed_dir is not None and location.results_dir is not None
    plan = Plan.load(location.preprocessed_dir / PLANS_FILE)
    check_output_location(location.results_dir, "results folder",
                          "--results DIR (or SWINFUSE_RESULTS)",
                          training_bytes(count_parameters(plan.architecture)),
                          "three checkpoints of weights and optimiser state")
