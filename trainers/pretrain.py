"""``swin_dim_pretrain``: self-supervised SwinFUSE pre-training of the Swin-DIM encoder."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from swinfuse_auto.data.pretraining_data import PretrainingBatches, build_pool, minimum_batch_size
from swinfuse_auto.data.step_loader import step_batches
from swinfuse_auto.models.device import autocast_dtype
from swinfuse_auto.models.encoder_file import save_encoder
from swinfuse_auto.networks.factory import build_pretraining_model
from swinfuse_auto.paths import ENCODER_FILE, LATEST_CHECKPOINT
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.progress import Progress
from swinfuse_auto.registry import TRAINERS
from swinfuse_auto.training.config import TrainerConfig
from swinfuse_auto.training.distributed import init_distributed
from swinfuse_auto.training.loop import LoopSettings, TrainingLoop
from swinfuse_auto.training.pretraining_task import PretrainingTask
from swinfuse_auto.training.run_setup import RunLogWriter, build_adamw, epochs_for, wrap_distributed
from swinfuse_auto.training.schedules import warmup_cosine
from swinfuse_auto.training.ssl_losses import DENSITY_MODALITIES, PretrainingLossWeights

logger = logging.getLogger(__name__)
#: Optimiser steps between two checkpoints when the config leaves iterations_per_epoch unset.
CHECKPOINT_INTERVAL = 25


def _batch_size_for(planned: int, modalities: list[str]) -> int:
    """The plan's batch, raised (loudly) when the pool holds more modalities than it was
    planned for, e.g. MR images added with ``--extra`` to a CT-only plan."""
    needed = minimum_batch_size(modalities)
    if planned < needed:
        logger.warning("pre-training batch raised from %d to %d crop pairs so that every batch "
                       "holds every modality (%s) and contrastive coding has a negative; a step "
                       "costs more time and memory than the plan's estimate", planned, needed,
                       ", ".join(modalities))
    return max(planned, needed)


def _density_weight_for(weight: float, modalities: list[str]) -> float:
    """The density-matching weight, or 0 with a loud warning when it cannot be computed.

    The term compares CT with MR embeddings; with one of them missing it would be a constant 0
    that looks like perfect alignment in the log, so it is switched off and said so instead.
    """
    missing = [m for m in DENSITY_MODALITIES if m not in modalities]
    if weight > 0 and missing:
        logger.warning("the density-matching term (CT/MR alignment, SwinFUSE's invariance loss) "
                       "is OFF: the pre-training images hold no %s (found: %s). Add images of "
                       "that modality (imagesTs cases tagged in case_channel_names, or pretrain "
                       "--extra DIR %s) to align the modalities.", " or ".join(missing),
                       ", ".join(modalities), missing[0])
        return 0.0
    return weight


@TRAINERS.register("swin_dim_pretrain")
@dataclass
class PretrainTrainer:
    """Pre-trains the plan's encoder on every image of ``stores`` (CT and MR mixed).

    Args:
        plan: the dataset's plan (architecture, patch size, pre-training budget).
        stores: preprocessed case folders to draw images from.
        output_dir: run folder (checkpoint_latest.pt, pretrained_encoder.pt, training_log.json).
        config: recipe values; ``epochs`` is ignored (the budget is ``iterations``).
        iterations: optimiser steps (at least 1, checked by :func:`pretrain`); None takes the
            plan's budget.
        device: "auto", "cpu" or "cuda".
    """

    plan: Plan
    stores: list[CaseStore]
    output_dir: Path
    config: TrainerConfig = field(default_factory=lambda: PretrainTrainer.default_config())
    iterations: int | None = None
    device: str = "auto"
    progress: Progress | None = None

    name = "swin_dim_pretrain"

    @staticmethod
    def default_config() -> TrainerConfig:
        return TrainerConfig(iterations_per_epoch=CHECKPOINT_INTERVAL, learning_rate=4e-4,
                             weight_decay=0.1, warmup_fraction=0.05, grad_clip=None,
                             num_workers=2)

    def build_loop(self) -> TrainingLoop:
        """Set up device, data, model and optimiser (the side effects live here, not __init__)."""
        context, device = init_distributed(self.device)
        recipe = self.plan.pretraining
        total = recipe.iterations if self.iterations is None else self.iterations
        interval = self.config.budget(1, CHECKPOINT_INTERVAL)[1]  # its epochs are not used
        epochs, per_epoch = epochs_for(total, interval)
        torch.manual_seed(self.config.seed)
        arch = self.plan.architecture
        model = build_pretraining_model(dataclasses.replace(arch, in_channels=1))
        model = wrap_distributed(model.to(device), context, device)
        pool = build_pool(self.stores)
        self.data_seen = {"images": len(pool),
                          "by_modality": dict(Counter(e.modality for e in pool)),
                          "folders": [str(s.folder) for s in self.stores]}
        modalities = sorted({entry.modality for entry in pool})
        batches = PretrainingBatches(pool, recipe.patch_size,
                                     _batch_size_for(recipe.batch_size, modalities))
        weights = PretrainingLossWeights(
            density_matching=_density_weight_for(recipe.density_matching_weight, modalities))
        task = PretrainingTask(model, device, weights, recipe.contrastive_temperature)
        warmup = min(recipe.warmup_iterations, int(self.config.warmup_fraction * total) or 1)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        return TrainingLoop(
            model=model,
            optimizer=build_adamw(model, recipe.learning_rate, recipe.weight_decay),
            lr_factor=lambda step: warmup_cosine(step, epochs * per_epoch, warmup),
            loss_fn=task,
            batches=lambda start: step_batches(batches, start, self.config.seed, context.rank,
                                               self.config.num_workers),
            settings=LoopSettings(epochs, per_epoch, self.config.grad_clip,
                                  autocast_dtype(device) if self.config.amp else None,
                                  self.progress),
            checkpoint_path=self.output_dir / LATEST_CHECKPOINT,
            meta={"kind": "swinfuse_pretraining_state", "trainer": self.name,
                  "plan_digest": self.plan.digest(), "iterations": epochs * per_epoch,
                  "trainer_config": self.config.to_dict()},
            context=context,
            callbacks=[RunLogWriter(self.output_dir, {"trainer": self.name,
                                                      "modalities": batches.modalities})])

    def run(self, resume: bool = True) -> Path:
        """Train (resuming from checkpoint_latest.pt when present) and write the encoder file."""
        loop = self.build_loop()
        latest = self.output_dir / LATEST_CHECKPOINT
        if resume and latest.exists():
            loop.resume(latest, expect={"plan_digest": self.plan.digest(),
                                        "iterations": loop.meta["iterations"]})
        self.last_history = loop.run()
        encoder_path = self.output_dir / ENCODER_FILE
        if loop.context.is_main:
            save_encoder(encoder_path, loop.model, self.plan, self.data_seen, loop.step)
        loop.context.barrier()
        return encoder_path
