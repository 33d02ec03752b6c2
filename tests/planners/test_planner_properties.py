"""Planner properties over many random fingerprints: every plan it writes can be pre-trained,
fine-tuned and predicted with.

Fingerprints are drawn at random (shapes with non-square in-plane fields of view, thick and thin
slices, 1-3 channels of CT / MR / other, a single case or several, unlabelled images of another
modality), for CPU and GPU targets. Every plan is checked structurally (it validates and
round-trips, the pre-training crop rotates by 90 degrees, each batch can hold every modality, the
windows tile the median volume); a sample of CPU plans also runs one pre-training step, one
fine-tuning step and a sliding-window prediction, on the planned crops with a narrow network.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from swinfuse_auto.data.pretraining_data import minimum_batch_size
from swinfuse_auto.data.ssl_views import make_views, rotation_plane
from swinfuse_auto.dataset.modality import MODALITY_INDEX, Modality, modality_of
from swinfuse_auto.dataset.spec import parse_dataset_json
from swinfuse_auto.fingerprint.case_stats import CaseFingerprint
from swinfuse_auto.fingerprint.dataset_stats import ChannelStats, DatasetFingerprint
from swinfuse_auto.inference.sliding_window import sliding_window_predict, window_slices
from swinfuse_auto.networks.factory import build_pretraining_model, build_segmentation_network
from swinfuse_auto.plans.context import PlanningContext
from swinfuse_auto.plans.schema import Plan, TargetDevice
from swinfuse_auto.registry import PLANNERS
from swinfuse_auto.training.pretraining_task import PretrainingTask
from swinfuse_auto.training.seg_losses import dice_ce_loss
from swinfuse_auto.training.ssl_losses import PretrainingLossWeights

CHANNEL_NAMES = ("CT", "T1", "T2", "FLAIR", "PET")
TARGETS = (TargetDevice("cpu", 4.0), TargetDevice("cpu", 9.4), TargetDevice("cpu", 16.0),
           TargetDevice("cuda", 8.0), TargetDevice("cuda", 24.0), TargetDevice("cuda", 72.0))
NUM_FINGERPRINTS = 120
RUN_FEATURE_SIZE = 6  # networks are narrowed for the runs; crops and batches stay as planned


def _channel_stats(name: str, rng: np.random.Generator) -> ChannelStats:
    if modality_of(name) == Modality.CT:
        low, high = float(rng.uniform(-1000, 0)), float(rng.uniform(200, 3000))
    else:
        low, high = 0.0, float(rng.uniform(10, 5000))
    mean = (low + high) / 2
    return ChannelStats(name, modality_of(name).value, mean, (high - low) / 4, mean, low, high,
                        low, high)


def _case(index: int, spacing: np.ndarray, shape: np.ndarray, classes: int,
          channels: int) -> CaseFingerprint:
    box = tuple((0, int(s)) for s in shape)
    return CaseFingerprint(f"case_{index:03d}", tuple(float(v) for v in spacing),  # type: ignore[arg-type]
                           tuple(int(v) for v in shape), box,  # type: ignore[arg-type]
                           {c: 100 for c in range(classes)}, (0.0,) * channels, (1.0,) * channels)


def random_context(seed: int) -> PlanningContext:
    """A random dataset: shapes, spacings, channels, cases, unlabelled modalities, target."""
    rng = np.random.default_rng(seed)
    names = [str(n) for n in rng.choice(CHANNEL_NAMES, size=int(rng.integers(1, 4)))]
    classes = int(rng.integers(2, 6))
    dataset = {"channel_names": {str(i): n for i, n in enumerate(names)},
               "labels": {"background": 0, **{f"c{i}": i for i in range(1, classes)}},
               "numTraining": 1, "file_ending": ".nii.gz"}
    spec = parse_dataset_json(dataset, Path("dataset.json"))
    in_plane = rng.uniform(0.3, 2.0)
    base_spacing = np.array([rng.choice([rng.uniform(0.5, 2.0), rng.uniform(3.0, 8.0)]),
                             in_plane, in_plane])
    base_shape = np.array([rng.integers(8, 300), rng.integers(20, 520), rng.integers(20, 520)])
    cases = tuple(_case(i, base_spacing * rng.uniform(0.9, 1.1, 3),
                        np.maximum(4, base_shape * rng.uniform(0.8, 1.2, 3)).astype(int),
                        classes, len(names))
                  for i in range(int(rng.choice([1, 2, 5, 12]))))
    fingerprint = DatasetFingerprint(cases, tuple(_channel_stats(n, rng) for n in names),
                                     dict(spec.labels))
    extra = frozenset(str(m) for m in rng.choice(["CT", "MR", "other"],
                                                  size=int(rng.integers(0, 3)), replace=False))
    target = TARGETS[int(rng.integers(len(TARGETS)))]
    return PlanningContext(f"Dataset{seed:03d}_Random", spec, fingerprint, target, extra)


def _modalities(context: PlanningContext) -> set[str]:
    return {s.modality for s in context.fingerprint.channels} | set(context.extra_modalities)


@pytest.mark.parametrize("planner", PLANNERS.names())
def test_every_random_fingerprint_gives_a_plan_that_every_stage_can_use(planner: str) -> None:
    for seed in range(NUM_FINGERPRINTS):
        context = random_context(seed)
        plan = PLANNERS.get(planner)(context).plan()
        where = f"seed {seed}, target {context.target}, plan {plan.to_dict()['configuration']}"
        assert Plan.from_dict(plan.to_dict()) == plan, where
        assert PLANNERS.get(planner)(random_context(seed)).plan() == plan, where  # deterministic
        crop = plan.pretraining.patch_size
        rotation_plane((1, 1, *crop))  # raises without a plane of two equal axes
        assert plan.pretraining.batch_size >= minimum_batch_size(sorted(_modalities(context)))
        for patch in (plan.configuration.patch_size, crop):
            plan.architecture.check_input_size(patch)
            assert max(patch) > 32, where  # bottleneck of more than one voxel
        assert window_slices(plan.configuration.median_shape, plan.configuration.patch_size)


def _narrow(plan: Plan) -> Plan:
    return dataclasses.replace(plan, architecture=dataclasses.replace(
        plan.architecture, feature_size=RUN_FEATURE_SIZE))


def _cpu_plans(count: int, max_voxels: int) -> list[Plan]:
    """The first ``count`` CPU plans whose crops and patches are small enough for a unit test
    (the cost of a step grows with them; the structural test covers the large ones)."""
    plans = []
    for seed in range(NUM_FINGERPRINTS):
        context = random_context(seed)
        if context.target.kind != "cpu":
            continue
        plan = PLANNERS.get("default")(context).plan()
        crop, patch = plan.pretraining.patch_size, plan.configuration.patch_size
        if max(np.prod(crop) * plan.pretraining.batch_size, np.prod(patch)) <= max_voxels:
            plans.append(plan)
        if len(plans) == count:
            break
    return plans


@pytest.mark.parametrize("plan", _cpu_plans(2, 2 * 32 * 64 * 64), ids=lambda p: p.dataset_name)
def test_sampled_cpu_plans_pretrain_finetune_and_predict(plan: Plan) -> None:
    plan = _narrow(plan)
    torch.manual_seed(0)
    crop, batch = plan.pretraining.patch_size, plan.pretraining.batch_size
    pretraining = build_pretraining_model(dataclasses.replace(plan.architecture, in_channels=1))
    modality = torch.tensor([MODALITY_INDEX[Modality.CT], MODALITY_INDEX[Modality.MR]]
                            * batch)[:batch]
    task = PretrainingTask(pretraining, torch.device("cpu"), PretrainingLossWeights(1, 1, 1, 1))
    losses = task({"image": torch.randn(batch, 1, *crop), "modality": modality, "view_seed": 1})
    losses["loss"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert make_views(torch.randn(batch, 1, *crop), torch.Generator().manual_seed(0))

    network = build_segmentation_network(plan.architecture)
    patch = plan.configuration.patch_size
    image = torch.randn(1, plan.architecture.in_channels, *patch)
    target = torch.randint(0, plan.architecture.num_classes, (1, 1, *patch))
    dice_ce_loss(network(image), target)["loss"].backward()

    network.eval()
    # one axis longer than the patch (two windows), the others as in the median case
    shape = [min(m, p) for m, p in zip(plan.configuration.median_shape, patch)]
    shape[int(np.argmax(patch))] += 8
    volume = torch.randn(plan.architecture.in_channels, *shape)
    probabilities = sliding_window_predict(volume, network, patch, plan.architecture.num_classes)
    assert probabilities.shape[1:] == volume.shape[1:]
    assert torch.allclose(probabilities.sum(0), torch.ones(()), atol=1e-4)
