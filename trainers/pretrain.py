"""``swin_dim_pretrain``: self-supervised SwinFUSE pre-training of the Swin-DIM encoder."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from swinfuse_auto.data.pretraining_data import PretrainingBatches, build_pool
from swinfuse_auto.data.step_loader import step_batches
from swinfuse_auto.models.encoder_file import save_encoder
from swinfuse_auto.networks.factory import build_pretraining_model
from swinfuse_auto.paths import ENCODER_FILE, LATEST_CHECKPOINT
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.progress import Progress
from swinfuse_auto.registry import DEFAULT_PRETRAINER, TRAINERS
from swinfuse_auto.training.config import PretrainingConfig
from swinfuse_auto.training.distributed import init_distributed
from swinfuse_auto.training.loop import TrainingLoop
from swinfuse_auto.training.pretraining_task import (PretrainingTask, batch_size_for,
                                                     density_weight_for)
from swinfuse_auto.training.recipe import PRETRAINING
from swinfuse_auto.training.run_setup import (RunLogWriter, epochs_for, loop_settings, optimisation,
                                              prepare_model)
from swinfuse_auto.training.ssl_losses import PretrainingLossWeights
from swinfuse_auto.training.step_time import StepTimeCheck, estimated_step_seconds

#: Optimiser steps between two checkpoints when the config leaves iterations_per_epoch unset.
CHECKPOINT_INTERVAL = 25


@TRAINERS.register(DEFAULT_PRETRAINER)
@dataclass(kw_only=True)
class PretrainTrainer:
    """Pre-trains the plan's encoder on every image of ``stores`` (CT and MR mixed).

    The plan gives what the data decides (budget, batch, crop, normalisation per modality);
    the config gives the optimisation and the loss weights.

    Args:
        plan: the dataset's plan.
        stores: preprocessed case folders to draw images from.
        output_dir: run folder (checkpoint_latest.pt, pretrained_encoder.pt, training_log.json).
        config: recipe values (see :class:`PretrainingConfig`).
        iterations: optimiser steps (at least 1, checked by the pretrain stage); None takes the
            plan's budget.
        device: "auto", "cpu" or "cuda".
        progress: reports the steps of each checkpoint interval.
    """

    name: ClassVar[str] = DEFAULT_PRETRAINER
    stage: ClassVar[str] = PRETRAINING

    plan: Plan
    stores: list[CaseStore]
    output_dir: Path
    config: PretrainingConfig = field(default_factory=lambda: PretrainTrainer.default_config())
    iterations: int | None = None
    device: str = "auto"
    progress: Progress | None = None

    @staticmethod
    def default_config() -> PretrainingConfig:
        return PretrainingConfig(iterations_per_epoch=CHECKPOINT_INTERVAL, learning_rate=4e-4,
                                 weight_decay=0.1, warmup_fraction=0.05, grad_clip=None,
                                 num_workers=2)

    @classmethod
    def accepted_settings(cls) -> list[str]:
        return PretrainingConfig.setting_names()

    def build_loop(self) -> TrainingLoop:
        """Set up device, data, model and optimiser (the side effects live here, not __init__)."""
        context, device = init_distributed(self.device)
        planned = self.plan.pretraining
        total = planned.iterations if self.iterations is None else self.iterations
        interval = self.config.iterations_per_epoch
        epochs, per_epoch = epochs_for(total, CHECKPOINT_INTERVAL if interval is None else interval)
        torch.manual_seed(self.config.seed)
        model = build_pretraining_model(dataclasses.replace(self.plan.architecture, in_channels=1))
        model = prepare_model(model.to(device), context, device, self.config.compile)
        pool = build_pool(self.stores)
        self.data_seen = {"images": len(pool),
                          "by_modality": dict(Counter(e.modality for e in pool)),
                          "folders": [str(s.folder) for s in self.stores]}
        modalities = sorted({entry.modality for entry in pool})
        batches = PretrainingBatches(pool, planned.patch_size,
                                     batch_size_for(planned.batch_size, modalities))
        weights = PretrainingLossWeights(density_matching=density_weight_for(
            self.config.density_matching_weight, modalities))
        optimizer, lr_factor = optimisation(model, self.config, epochs * per_epoch,
                                            self.config.warmup_steps(total))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        return TrainingLoop(
            model=model, optimizer=optimizer, lr_factor=lr_factor,
            loss_fn=PretrainingTask(model, device, weights, self.config.contrastive_temperature),
            batches=lambda start: step_batches(batches, start, self.config.seed, context.rank,
                                               self.config.num_workers),
            settings=loop_settings(self.config, epochs, per_epoch, device, self.progress),
            checkpoint_path=self.output_dir / LATEST_CHECKPOINT,
            meta={"kind": "swinfuse_pretraining_state", "trainer": self.name,
                  "plan_digest": self.plan.digest(), "iterations": epochs * per_epoch,
                  "trainer_config": self.config.to_dict()},
            context=context,
            callbacks=[RunLogWriter(self.output_dir, {"trainer": self.name,
                                                      "modalities": batches.modalities}),
                       StepTimeCheck(estimated_step_seconds(
                           dataclasses.replace(self.plan.architecture, in_channels=1),
                           planned.patch_size, 2 * batches.batch_size, device),
                           "pre-training step (two views of each crop)")])

    def run(self, resume: bool = True) -> Path:
        """Train (resuming from checkpoint_latest.pt when present and ``resume``) and write the
        encoder file; returns its path."""
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
