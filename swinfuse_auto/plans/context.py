"""What a planner is given: the core's input type for every planner, built-in or third-party.

A planner plug-in receives one :class:`PlanningContext` and returns a
:class:`~swinfuse_auto.plans.schema.Plan`, so its input type lives in the core, beside the plan,
and a third-party planner never has to import a built-in one to get it.
"""

from __future__ import annotations

from dataclasses import dataclass

from swinfuse_auto.dataset.spec import DatasetSpec
from swinfuse_auto.fingerprint.dataset_stats import DatasetFingerprint
from swinfuse_auto.plans.schema import TargetDevice


@dataclass
class PlanningContext:
    """The inputs of a planner.

    Args:
        dataset_name: the dataset folder name, recorded in the plan.
        spec: the parsed dataset.json.
        fingerprint: the statistics of the training cases.
        target: the device and memory budget the plan is sized for
            (:func:`swinfuse_auto.plans.targets.choose_target`).
        extra_modalities: modalities of the unlabelled images (imagesTs).
    """

    dataset_name: str
    spec: DatasetSpec
    fingerprint: DatasetFingerprint
    target: TargetDevice
    extra_modalities: frozenset[str] = frozenset()
