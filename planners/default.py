"""The default planner: target spacing, Swin-DIM network size, patch and batch size fitted to the
memory budget through the measured cost model, normalisation by modality and the pre-training
budget. Every decision records its reason in ``plans.json``.

Variants subclass :class:`DefaultPlanner`, override one hook and register under a new name.
"""

from __future__ import annotations

import math

import numpy as np

from swinfuse_auto import __version__
from swinfuse_auto.data.splits import num_folds_for
from swinfuse_auto.dataset.modality import Modality
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.cost_model import estimate_step_seconds_cpu, estimate_training_memory_gb
from swinfuse_auto.plans.context import PlanningContext
from swinfuse_auto.plans.crop_rules import has_rotation_plane, pretraining_crop_for
from swinfuse_auto.plans.schema import (SCHEMA_VERSION, ConfigurationPlan, NormalizationPlan, Plan,
                                        PretrainingPlan, ResamplingPlan)
from swinfuse_auto.plans.targets import CPU_STEP_SECONDS
from swinfuse_auto.registry import DEFAULT_PLANNER, PLANNERS

Shape3D = tuple[int, int, int]
#: nnU-Net's starting patch volume; the memory budget then shrinks it.
INITIAL_PATCH_VOXELS = 256**3
#: A batch never covers more than this share of all the dataset's voxels (nnU-Net's rule), so a
#: tiny dataset is not learnt from a handful of giant batches.
MAX_BATCH_DATASET_FRACTION = 0.05
#: z-score inside the non-zero mask when cropping kept less than this share of the image.
MASKED_ZSCORE_CROP_FRACTION = 0.75
#: Swin UNETR's fixed CT window, for CT images in a dataset whose training channels are not CT.
DEFAULT_CT_WINDOW = {"clip_low": -1000.0, "clip_high": 1000.0, "mean": 0.0, "std": 500.0}
#: Pre-training time a CPU plan budgets by default (seconds); GPU plans use fixed iterations.
CPU_PRETRAIN_SECONDS = 600.0
GPU_PRETRAIN_ITERATIONS = 20_000


@PLANNERS.register(DEFAULT_PLANNER)
class DefaultPlanner:
    """Plans one 3D configuration for a Swin-DIM UNETR.

    Args:
        context: dataset, fingerprint and target device.

    Example:
        >>> plan = PLANNERS.get("default")(context).plan()  # doctest: +SKIP
    """

    name = DEFAULT_PLANNER
    dim = "swin_dim"

    def __init__(self, context: PlanningContext) -> None:
        self.context = context
        self.reasons: dict[str, str] = {}

    # -- hooks -------------------------------------------------------------------------------
    def target_spacing(self) -> tuple[float, float, float]:
        """Median spacing; a much coarser axis (thick slices) takes its 10th percentile."""
        spacings = self.context.fingerprint.spacings
        shapes = self.context.fingerprint.shapes_after_crop
        target = np.median(spacings, axis=0)
        median_shape = np.median(shapes, axis=0)
        worst = int(np.argmax(target))
        others = [a for a in range(3) if a != worst]
        if (target[worst] > 3 * max(target[others])
                and median_shape[worst] * 3 < min(median_shape[others])):
            target[worst] = max(np.percentile(spacings[:, worst], 10), max(target[others]))
            self.reasons["spacing"] = ("median spacing, except the anisotropic axis "
                                       f"{worst}, which takes its 10th percentile to keep detail")
        else:
            self.reasons["spacing"] = "median spacing of the training cases"
        return tuple(round(float(s), 4) for s in target)  # type: ignore[return-value]

    def architecture(self) -> SwinArchitecture:
        spec = self.context.spec
        if self.context.target.kind == "cuda":
            feature_size = 48
            self.reasons["architecture"] = "feature size 48 (Swin UNETR's) on a GPU"
        else:
            feature_size = 12
            self.reasons["architecture"] = ("feature size 12 on a CPU: feature 48 costs ~18 s per "
                                            "64^3 step on 2 cores, 12 about 4 s")
        return SwinArchitecture(in_channels=spec.num_channels, num_classes=spec.num_classes,
                                feature_size=feature_size, dim=self.dim)

    def other_modalities(self) -> list[str]:
        """Modalities of the unlabelled images (imagesTs) that no labelled channel has."""
        labelled = {s.modality for s in self.context.fingerprint.channels}
        return sorted(self.context.extra_modalities - labelled)

    def normalization(self) -> list[NormalizationPlan]:
        plans, notes = [], []
        masked = self.context.fingerprint.median_crop_fraction < MASKED_ZSCORE_CROP_FRACTION
        for stats in self.context.fingerprint.channels:
            if stats.modality == Modality.CT.value and self.other_modalities():
                # The labelled voxels' window puts fat, bowel, muscle and air on one floor
                # value (73% of the example CT): a network never learns to ignore structured
                # background, which is what the other modality shows it.
                plans.append(NormalizationPlan("ct", False, dict(DEFAULT_CT_WINDOW)))
                notes.append(f"{stats.name}: CT, Swin UNETR's window [-1000, 1000] HU, so the "
                             "background tissues keep their contrast as in the unlabelled "
                             f"{', '.join(self.other_modalities())} images")
            elif stats.modality == Modality.CT.value:
                plans.append(NormalizationPlan("ct", False, {
                    "clip_low": stats.percentile_00_5, "clip_high": stats.percentile_99_5,
                    "mean": stats.mean, "std": stats.std}))
                notes.append(f"{stats.name}: CT, clip to foreground 0.5/99.5 percentiles "
                             "then dataset z-score")
            else:
                plans.append(NormalizationPlan("zscore", masked))
                notes.append(f"{stats.name}: {stats.modality}, per-image z-score"
                             + (" inside the non-zero mask (cropping removed much)" if masked
                                else ""))
        self.reasons["normalization"] = "; ".join(notes)
        return plans

    def fits(self, arch: SwinArchitecture, patch: Shape3D, batch: int) -> bool:
        """Whether a step fits the memory budget (and, on a CPU, the step-time budget)."""
        target = self.context.target
        if estimate_training_memory_gb(arch, patch, batch, target.kind) > target.memory_budget_gb:
            return False
        return target.kind != "cpu" or estimate_step_seconds_cpu(arch, patch, batch) <= CPU_STEP_SECONDS

    # -- fixed machinery ---------------------------------------------------------------------
    def median_shape(self, spacing: tuple[float, float, float]) -> Shape3D:
        fp = self.context.fingerprint
        extents = fp.shapes_after_crop * fp.spacings
        return tuple(int(round(v)) for v in np.median(extents / np.array(spacing), axis=0))  # type: ignore[return-value]

    def patch_size(self, arch: SwinArchitecture, spacing: tuple[float, float, float],
                   median_shape: Shape3D) -> Shape3D:
        """Aspect from the spacing, clipped to the median shape, shrunk until a batch of 2 fits."""
        div = arch.input_divisor  # every axis a multiple of the encoder's down-sampling
        aspect = 1.0 / np.array(spacing)
        start = aspect * (INITIAL_PATCH_VOXELS / np.prod(aspect)) ** (1 / 3)
        ceiling = [max(div, int(round(m / div)) * div) for m in median_shape]
        patch = [min(c, max(div, int(s // div) * div)) for s, c in zip(start, ceiling)]
        if all(p == div for p in patch):  # a 1-voxel bottleneck breaks instance norm
            patch[int(np.argmax(median_shape))] = 2 * div
        while not self.fits(arch, tuple(patch), 2 if self.context.target.kind == "cuda" else 1):
            ratios = [p / m if p > div else -1 for p, m in zip(patch, median_shape)]
            axis = int(np.argmax(ratios))
            if ratios[axis] < 0 or _bottleneck_voxels(patch, div) <= 2:
                break
            patch[axis] -= div
        self.reasons["patch_size"] = (
            f"aspect 1/spacing from {INITIAL_PATCH_VOXELS} voxels, clipped to the median shape "
            f"{list(median_shape)}, each axis a multiple of {div}, shrunk along the axis "
            f"largest relative to the median shape until the measured cost model fits "
            f"{self.context.target.memory_budget_gb} GB on {self.context.target.kind}")
        return tuple(patch)  # type: ignore[return-value]

    def batch_size(self, arch: SwinArchitecture, patch: Shape3D) -> int:
        fp = self.context.fingerprint
        dataset_voxels = float(np.sum(np.prod(fp.shapes_after_crop, axis=1)))
        cap = max(1, int(MAX_BATCH_DATASET_FRACTION * dataset_voxels / np.prod(patch)))
        floor = 2 if self.context.target.kind == "cuda" else 1
        batch = floor
        while batch < cap and self.fits(arch, patch, batch + 1):
            batch += 1
        batch = max(min(batch, cap), floor)
        self.reasons["batch_size"] = (f"largest batch that fits the budget, at least {floor}, at "
                                      f"most {MAX_BATCH_DATASET_FRACTION:.0%} of the dataset's voxels")
        return batch

    def modality_normalization(self, channel_plans: list[NormalizationPlan]
                               ) -> dict[str, NormalizationPlan]:
        """How a single-channel image of each modality is normalised for pre-training.

        Keyed in sorted order: iterating the set of modalities would order plans.json by
        PYTHONHASHSEED, and the same data must give the same bytes.
        """
        result: dict[str, NormalizationPlan] = {}
        for stats, plan in zip(self.context.fingerprint.channels, channel_plans):
            result.setdefault(stats.modality, plan)
        for modality in self.context.extra_modalities | {m.value for m in Modality}:
            if modality not in result:
                result[modality] = (NormalizationPlan("ct", False, dict(DEFAULT_CT_WINDOW))
                                    if modality == Modality.CT.value
                                    else NormalizationPlan("zscore", True))
        return dict(sorted(result.items()))

    def pretraining_crop(self, arch: SwinArchitecture, patch: Shape3D, median_shape: Shape3D,
                         batch: int) -> Shape3D:
        """The fine-tuning patch with a rotation plane, shrunk until a step fits the budget.

        Two equal axes in one plane let the rotation task turn every crop by 90 degrees
        (SwinFUSE and Tang et al. pre-train on cubes), so a patch without such a plane gets
        square in-plane axes; a step holds two views of ``batch`` crops. Shrinking takes one
        encoder divisor (32 voxels) off the axis (or equal pair of axes) largest relative to the median shape, keeps
        the rotation plane and never reaches a one-voxel bottleneck.
        """
        div = arch.input_divisor
        crop = pretraining_crop_for(patch)
        while not self.fits(arch, crop, 2 * batch):
            candidates = []
            for axes in ((0,), (1,), (2,), (1, 2), (0, 1), (0, 2)):
                smaller = tuple(c - div if a in axes else c for a, c in enumerate(crop))
                if (min(smaller) >= div and has_rotation_plane(smaller)
                        and _bottleneck_voxels(list(smaller), div) > 1):
                    score = max(crop[a] / median_shape[a] for a in axes)
                    candidates.append((score, smaller))
            if not candidates:
                break
            crop = max(candidates)[1]
        return crop  # type: ignore[return-value]

    def pretraining(self, arch: SwinArchitecture, patch: Shape3D, median_shape: Shape3D,
                    channel_plans: list[NormalizationPlan]) -> PretrainingPlan:
        modalities = {s.modality for s in self.context.fingerprint.channels}
        modalities |= self.context.extra_modalities
        # every modality in every batch (density matching compares them within a batch), and
        # at least two crops (NT-Xent needs a negative)
        batch = max(2, len(modalities))
        crop = self.pretraining_crop(arch, patch, median_shape, batch)
        if self.context.target.kind == "cuda":
            iterations = GPU_PRETRAIN_ITERATIONS
        else:
            step = estimate_step_seconds_cpu(arch, crop, 2 * batch)
            iterations = max(20, int(CPU_PRETRAIN_SECONDS / max(step, 1e-3)))
        self.reasons["pretraining"] = (
            f"{iterations} iterations of {batch} crop pairs of {list(crop)} (y = x so that "
            "90-degree rotations keep the shape; at least 2 crops and every modality per batch)"
            + (", mixing modalities " + ", ".join(sorted(modalities)) if len(modalities) > 1
               else "")
            + ("" if self.context.target.kind == "cuda"
               else f"; about {CPU_PRETRAIN_SECONDS / 60:.0f} min on this CPU by the cost model"))
        return PretrainingPlan(iterations=iterations, batch_size=batch, patch_size=crop,
                               modality_normalization=self.modality_normalization(channel_plans))

    def finetuning_preset(self) -> str:
        """modality_independent where imagesTs holds a modality the labels lack, else
        nnunet_intensity: the recipes that measured best on each kind of dataset.

        On the generated CT->MR benchmark (benchmarks/ood.py, 600 CPU steps, no pre-training),
        feeding the network the MIND-SSC descriptor instead of intensities took MR Dice from
        0.06 / 0.04 (T1 / T2) to about 0.6 / 0.6 at the same CT Dice (README, out-of-modality
        results). With one modality there is nothing to generalise to, and intensities are
        information: nnunet_intensity keeps them.
        """
        other = self.other_modalities()
        if other:
            labelled = sorted({s.modality for s in self.context.fingerprint.channels})
            self.reasons["finetuning_preset"] = (
                f"modality_independent: imagesTs holds {', '.join(other)} images and the labels "
                f"are {', '.join(labelled)} only, so the network is fed the MIND-SSC descriptor "
                "(edges and their layout, which both modalities share) instead of intensities, "
                "which differ between them; it measured best on both modalities "
                "(benchmarks/ood.py; README, out-of-modality results). --preset "
                "nnunet_intensity keeps intensities")
            return "modality_independent"
        self.reasons["finetuning_preset"] = ("nnunet_intensity: every image has a labelled "
                                             "modality")
        return "nnunet_intensity"

    def plan(self) -> Plan:
        spacing = self.target_spacing()
        median_shape = self.median_shape(spacing)
        arch = self.architecture()
        patch = self.patch_size(arch, spacing, median_shape)
        batch = self.batch_size(arch, patch)
        channel_plans = self.normalization()
        configuration = ConfigurationPlan("3d_fullres", spacing, median_shape, patch, batch,
                                          channel_plans, ResamplingPlan())
        self.reasons["resampling"] = ("images trilinear in float32, labels as one-hot linear; "
                                      "nearest neighbour along an axis > 3x coarser than the others")
        num_cases = len(self.context.fingerprint.cases)
        folds = num_folds_for(num_cases)
        self.reasons["folds"] = (f"{folds}-fold cross-validation of {num_cases} cases" if folds
                                 else "one case: only fold 'all' can be trained")
        pretraining = self.pretraining(arch, patch, median_shape, channel_plans)
        return Plan(SCHEMA_VERSION, self.context.dataset_name, self.name, __version__,
                    self.context.target, configuration, arch, pretraining, folds,
                    self.finetuning_preset(), dict(self.reasons))


def _bottleneck_voxels(patch: list[int], divisor: int) -> int:
    return math.prod(p // divisor for p in patch)
