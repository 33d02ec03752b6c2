"""The plan's dataclasses and their JSON form (``plans.json``).

The plan holds only decisions that depend on the data (spacing, patch, network size,
normalisation, folds, pre-training budget and crop), each with the reason it was taken.
Training-recipe values that do not depend on the data (learning rates, warm-up, loss weights,
epochs) belong to the recipe's config (:mod:`swinfuse_auto.training.config`); runtime flags
(device, fold, resume) are never plan keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from swinfuse_auto.errors import PlanError
from swinfuse_auto.io.atomic import read_json, write_json
from swinfuse_auto.maths.normalization import NORMALIZATIONS
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.plans.crop_rules import has_rotation_plane, square_in_plane
from swinfuse_auto.plans.migrations import CURRENT_VERSION as SCHEMA_VERSION, migrate
from swinfuse_auto.typed_json import from_jsonable, to_jsonable


@dataclass(frozen=True)
class NormalizationPlan:
    """A registered scheme name plus the dataset-level numbers it needs (empty for per-image
    schemes); :mod:`swinfuse_auto.maths.normalization` applies it."""

    scheme: str
    use_nonzero_mask: bool = False
    params: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ResamplingPlan:
    """How images and labels are brought to the target spacing (and back)."""

    image_order: int = 1
    label_mode: str = "onehot_linear"
    anisotropy_threshold: float = 3.0

    def validate(self, path: str) -> None:
        if self.image_order not in (0, 1):
            raise PlanError(f"{path}.image_order: expected 0 (nearest) or 1 (linear), found "
                            f"{self.image_order}.")


@dataclass(frozen=True)
class ConfigurationPlan:
    """The 3D full-resolution configuration every stage uses."""

    name: str
    spacing: tuple[float, float, float]  # z, y, x mm
    median_shape: tuple[int, int, int]  # after crop and resampling
    patch_size: tuple[int, int, int]
    batch_size: int
    normalization: list[NormalizationPlan]
    resampling: ResamplingPlan = field(default_factory=ResamplingPlan)

    def validate(self, path: str) -> None:
        if self.batch_size < 1:
            raise PlanError(f"{path}.batch_size: must be at least 1, found {self.batch_size}.")
        for i, norm in enumerate(self.normalization):
            if norm.scheme not in NORMALIZATIONS:
                raise PlanError(f"{path}.normalization[{i}].scheme: unknown scheme "
                                f"'{norm.scheme}'; valid: {NORMALIZATIONS.names()}.")


@dataclass(frozen=True)
class PretrainingPlan:
    """The self-supervised pre-training budget and data sized for this dataset and device.

    ``patch_size`` is the pre-training crop, planned apart from the fine-tuning patch: the
    rotation task turns crops by multiples of 90 degrees, which keeps the shape only in a plane
    whose two axes are equal, and each step holds two views of ``batch_size`` crops.
    ``batch_size`` is at least 2: NT-Xent needs negatives, and a batch must hold every modality
    for the density-matching term. The optimisation (learning rate, warm-up, loss weights) is
    not data-dependent and belongs to the pre-training recipe's config, not here.
    """

    iterations: int
    batch_size: int
    patch_size: tuple[int, int, int]
    modality_normalization: dict[str, NormalizationPlan] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        if not has_rotation_plane(self.patch_size):
            raise PlanError(f"{path}.patch_size: {list(self.patch_size)} has no plane with two "
                            "equal axes, so 90-degree rotations would change its shape; make y "
                            "equal to x, e.g. " f"{list(square_in_plane(self.patch_size))}.")
        if self.batch_size < 2:
            raise PlanError(f"{path}.batch_size: must be at least 2 (contrastive coding needs "
                            f"another crop as a negative), found {self.batch_size}.")
        if self.iterations < 1:
            raise PlanError(f"{path}.iterations: must be at least 1, found {self.iterations}.")


@dataclass(frozen=True)
class TargetDevice:
    """What the plan was sized for."""

    kind: str  # "cuda" or "cpu"
    memory_budget_gb: float


@dataclass(frozen=True)
class Plan:
    """Everything planned for one dataset (see the module docstring)."""

    schema_version: int
    dataset_name: str
    planner: str
    created_with: str
    target: TargetDevice
    configuration: ConfigurationPlan
    architecture: SwinArchitecture
    pretraining: PretrainingPlan
    num_folds: int
    finetuning_preset: str
    reasons: dict[str, str] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        """Both crops must fit the network: the architecture knows its own input rule."""
        self.architecture.check_input_size(self.configuration.patch_size,
                                           "configuration.patch_size")
        self.architecture.check_input_size(self.pretraining.patch_size, "pretraining.patch_size")
        if self.architecture.in_channels != len(self.configuration.normalization):
            raise PlanError(f"architecture.in_channels ({self.architecture.in_channels}) must equal "
                            f"the number of channels in configuration.normalization "
                            f"({len(self.configuration.normalization)}).")

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return from_jsonable(cls, migrate(data))

    def digest(self) -> str:
        """Hash of what preprocessing depends on, so a changed plan re-preprocesses the cache."""
        relevant = {k: v for k, v in to_jsonable(self.configuration).items()
                    if k not in ("batch_size", "patch_size")}
        relevant["modality_normalization"] = to_jsonable(self.pretraining.modality_normalization)
        text = json.dumps(relevant, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_configuration(self, **changes: Any) -> Plan:
        return replace(self, configuration=replace(self.configuration, **changes))

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Plan:
        path = Path(path)
        if not path.exists():
            raise PlanError(f"{path} does not exist. Run plan_and_preprocess for this dataset "
                            "first.")
        try:
            return cls.from_dict(read_json(path))
        except PlanError as exc:
            raise PlanError(f"{path}: {exc} Fix the value or delete the file and re-run "
                            "plan_and_preprocess.") from None
