"""The demo's training budget as a time budget: measure this machine's steps, then choose them.

CPUs differ several-fold (AVX-512 or AVX2, shared or idle), so a fixed step count that fits 15
minutes on one 2-core machine takes over 20 on another. After planning, the demo times a few
fine-tuning and pre-training steps of the plan's network on synthetic batches and chooses how
many of each fit the minutes that are left, keeping a reserve for what follows training
(pseudo-labelling, validation, prediction with test-time augmentation, evaluation), which also
scales with the step time.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swinfuse_auto.plans.schema import Plan

#: Work after training, in fine-tuning steps (measured on the demo: validation of 2 CT cases,
#: pseudo-labels of the MR cases and prediction of 2 CT and 4 MR cases with mirroring took
#: about as long as this many steps).
RESERVE_STEPS = 120
#: A demo fine-tuning step takes this much longer than the synthetic step that is timed: data
#: loading and augmentation in worker processes on the same cores, the validation batches of each
#: epoch, logging (measured 2026-12-02, 2 cores, AVX2 kernels: 0.85 s timed, 1.05-1.25 s per step
#: in the run, 24 epochs of 25 steps with 28 s of compute each). The timing itself is noisy: the
#: next run on the same idle machine timed 1.27 s and then ran steps of about 1.0 s, so there
#: the factor made the demo stop early. Re-planning from the real steps of the first epoch would
#: replace both.
REAL_STEP_FACTOR = 1.35
#: Share of the training time that pre-training may take (its steps are few in a demo anyway).
PRETRAINING_SHARE = 0.15
#: The demo shows every stage, so it pre-trains for at least this many steps.
MIN_PRETRAIN_STEPS = 2


@dataclass(frozen=True)
class StepSeconds:
    """Measured seconds per step on this machine."""

    fine_tuning: float
    pre_training: float


@dataclass(frozen=True)
class ChosenBudget:
    """The steps chosen for the time left, and the time they are expected to take."""

    pretrain_iterations: int
    epochs: int
    iterations_per_epoch: int
    expected_seconds: float


def _timed_steps(step: Callable[[], None], repeats: int = 2) -> float:
    """Seconds per call of ``step`` after one warm-up call."""
    step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats


def plan_input_features(plan: Plan) -> str:
    """The input stage of the network the plan's fine-tuning preset builds."""
    from swinfuse_auto.registry import TRAINER_PRESETS

    settings = TRAINER_PRESETS.get(plan.finetuning_preset).settings
    return str(settings.get("input_features", "intensity"))


def fine_tuning_uses_encoder(plan: Plan) -> bool:
    """Whether the plan's fine-tuning starts from the pre-trained encoder (see
    ``InputFeatures.pretrained_encoder_fits``); when not, the demo pre-trains only to show the
    stage, :data:`MIN_PRETRAIN_STEPS` steps, and gives the time to fine-tuning."""
    from swinfuse_auto.networks.input_features import INPUT_FEATURES

    return INPUT_FEATURES.get(plan_input_features(plan)).pretrained_encoder_fits


def measure_step_seconds(plan: Plan, deep_supervision: bool = True) -> StepSeconds:
    """Seconds of one fine-tuning step (the plan's patch and batch, Dice + CE, AdamW) and of one
    pre-training step (two views of the plan's pre-training batch, the four losses) on the CPU,
    on synthetic batches."""
    import torch

    from swinfuse_auto.dataset.modality import MODALITY_INDEX, Modality
    from swinfuse_auto.networks.factory import (build_pretraining_model,
                                                build_segmentation_network)
    from swinfuse_auto.training.pretraining_task import PretrainingTask
    from swinfuse_auto.training.seg_losses import deep_supervision_loss, dice_ce_loss
    from swinfuse_auto.training.ssl_losses import PretrainingLossWeights

    arch, config = plan.architecture, plan.configuration
    torch.manual_seed(0)
    # the network the demo's fine-tuning builds: the plan's preset may change its input stage
    network = build_segmentation_network(arch, deep_supervision=deep_supervision,
                                         input_features=plan_input_features(plan))
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    image = torch.randn(config.batch_size, arch.in_channels, *config.patch_size)
    target = torch.randint(0, arch.num_classes, (config.batch_size, 1, *config.patch_size))

    def fine_tuning_step() -> None:
        output = network(image)
        losses = (deep_supervision_loss(list(output), target)
                  if isinstance(output, (list, tuple)) else dice_ce_loss(output, target))
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()

    crop, batch = plan.pretraining.patch_size, plan.pretraining.batch_size
    model = build_pretraining_model(dataclasses.replace(arch, in_channels=1))
    codes = [MODALITY_INDEX[Modality.CT], MODALITY_INDEX[Modality.MR]]
    task = PretrainingTask(model, torch.device("cpu"), PretrainingLossWeights(1, 1, 1, 1))
    ssl_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    crops = {"image": torch.randn(batch, 1, *crop), "view_seed": 0,
             "modality": torch.tensor([codes[i % 2] for i in range(batch)])}

    def pre_training_step() -> None:
        ssl_optimizer.zero_grad()
        task(crops)["loss"].backward()
        ssl_optimizer.step()

    return StepSeconds(_timed_steps(fine_tuning_step), _timed_steps(pre_training_step, 1))


def choose_budget(seconds_left: float, steps: StepSeconds, max_pretrain: int, max_epochs: int,
                  iterations_per_epoch: int) -> ChosenBudget:
    """The most steps (up to the maximum budget) that fit ``seconds_left`` with the reserve.

    Pre-training gets at most :data:`PRETRAINING_SHARE` of the training time (and at least
    :data:`MIN_PRETRAIN_STEPS`); fine-tuning gets whole epochs, at least one even when that
    overruns (the demo must produce a model).
    """
    steps = dataclasses.replace(steps, fine_tuning=steps.fine_tuning * REAL_STEP_FACTOR)
    training = max(0.0, seconds_left - RESERVE_STEPS * steps.fine_tuning)
    pretrain = min(max_pretrain, max(MIN_PRETRAIN_STEPS,
                                     int(PRETRAINING_SHARE * training / steps.pre_training)))
    fine_tuning = training - pretrain * steps.pre_training
    epochs = min(max_epochs, max(1, math.floor(fine_tuning / steps.fine_tuning
                                               / iterations_per_epoch)))
    expected = (pretrain * steps.pre_training
                + (epochs * iterations_per_epoch + RESERVE_STEPS) * steps.fine_tuning)
    return ChosenBudget(pretrain, epochs, iterations_per_epoch, expected)
