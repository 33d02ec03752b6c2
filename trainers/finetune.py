"""``swin_dim_finetune``: Swin-DIM UNETR segmentation of one cross-validation fold."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from swinfuse_auto.data.step_loader import step_batches
from swinfuse_auto.dataset.spec import parse_dataset_json
from swinfuse_auto.inference.fold_ensemble import network_volume_predictor
from swinfuse_auto.models.fold_model import fold_model_meta, save_fold_model
from swinfuse_auto.models.unwrap import unwrap_model
from swinfuse_auto.paths import BEST_CHECKPOINT, FINAL_CHECKPOINT, LATEST_CHECKPOINT
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.progress import Progress
from swinfuse_auto.registry import DEFAULT_TRAINER, TRAINERS
from swinfuse_auto.training.config import FinetuningConfig
from swinfuse_auto.training.distributed import init_distributed
from swinfuse_auto.training.loop import TrainingLoop
from swinfuse_auto.training.recipe import FINE_TUNING
from swinfuse_auto.training.run_setup import (RunLogWriter, loop_settings, optimisation,
                                              prepare_model)
from swinfuse_auto.training.segmentation_setup import (check_fresh_or_resume, fold_batches,
                                                       initial_network, segmentation_batches)
from swinfuse_auto.training.segmentation_task import PseudoDice, SegmentationTask
from swinfuse_auto.training.step_time import StepTimeCheck, estimated_step_seconds
from swinfuse_auto.visualization.curves import CurvePlotter

#: (epochs, iterations per epoch) when the config leaves them unset (None), by the plan's device.
DEFAULT_BUDGET = {"cuda": (300, 250), "cpu": (10, 25)}


@TRAINERS.register(DEFAULT_TRAINER)
@dataclass(kw_only=True)
class FinetuneTrainer:
    """Trains fold ``fold`` of ``plan`` on the cases of ``train_ids``.

    Args:
        plan: the dataset's plan.
        dataset_json: the raw dataset.json (stored in the model for prediction).
        store: the preprocessed training cases.
        train_ids, val_ids: the fold's split (val empty for fold 'all').
        fold: fold index or "all".
        output_dir: the fold folder.
        config: recipe values (see :class:`FinetuningConfig`).
        pretrained: encoder file to start from, or None for random initialisation.
        device: "auto", "cpu" or "cuda".
        progress: reports the steps of each epoch.
        unlabelled: the dataset's preprocessed unlabelled images (imagesTs), which
            self-training pseudo-labels where they are of another modality.
    """

    name: ClassVar[str] = DEFAULT_TRAINER
    stage: ClassVar[str] = FINE_TUNING

    plan: Plan
    dataset_json: dict[str, Any]
    store: CaseStore
    train_ids: list[str]
    val_ids: list[str]
    fold: str
    output_dir: Path
    config: FinetuningConfig = field(default_factory=lambda: FinetuneTrainer.default_config())
    pretrained: Path | None = None
    device: str = "auto"
    progress: Progress | None = None
    unlabelled: CaseStore | None = None
    #: tensor counts of the encoder transfer (loaded / adapted / decoder_fresh), for the log
    transfer: dict[str, int] | None = field(default=None, init=False)

    @staticmethod
    def default_config() -> FinetuningConfig:
        return FinetuningConfig(epochs=None, iterations_per_epoch=None, learning_rate=2e-4,
                                weight_decay=1e-5, warmup_fraction=0.02, grad_clip=12.0)

    @classmethod
    def accepted_settings(cls) -> list[str]:
        return FinetuningConfig.setting_names()

    def budget(self) -> tuple[int, int]:
        """(epochs, iterations per epoch): the config's, else the default for the device."""
        return self.config.budget(*DEFAULT_BUDGET[self.plan.target.kind])

    def meta(self, **extra: Any) -> dict[str, Any]:
        return fold_model_meta(self.plan, self.dataset_json, self.fold, self.name,
                               self.config.to_dict(), **extra)

    def build_loop(self) -> TrainingLoop:
        """Device, network (with the pre-trained encoder), data and optimiser."""
        context, device = init_distributed(self.device)
        epochs, per_epoch = self.budget()
        network, self.transfer = initial_network(self.plan, self.config, self.pretrained)
        model = prepare_model(network.to(device), context, device, self.config.compile)
        spec = parse_dataset_json(self.dataset_json, Path())
        scaling = self.config.input_scaling
        batches, switches = fold_batches(
            self.plan, self.config, self.store, self.train_ids, self.unlabelled,
            tuple(m.value for m in spec.modalities), self.output_dir, epochs, per_epoch,
            context, lambda: network_volume_predictor(network, self.plan, device, scaling))
        callbacks: list[Any] = []
        if self.val_ids:
            val = segmentation_batches(self.plan, self.config, self.store, self.val_ids, False)
            callbacks.append(PseudoDice(
                lambda start: step_batches(val, start, self.config.seed + 1, 0, 0),
                model, device, self.plan.architecture.num_classes,
                self.config.validation_batches_per_epoch,
                lambda loop: loop.save(self.output_dir / BEST_CHECKPOINT)))
        callbacks += [RunLogWriter(self.output_dir, {"trainer": self.name, "fold": self.fold}),
                      CurvePlotter(self.output_dir / "progress.png"),
                      StepTimeCheck(
                          estimated_step_seconds(self.plan.architecture,
                                                 self.plan.configuration.patch_size,
                                                 self.plan.configuration.batch_size, device),
                          "fine-tuning step")]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        total = epochs * per_epoch
        optimizer, lr_factor = optimisation(
            model, self.config, total, max(1, int(self.config.warmup_fraction * total)))
        return TrainingLoop(
            model=model, optimizer=optimizer, lr_factor=lr_factor,
            loss_fn=SegmentationTask(model, device), batches=batches,
            settings=loop_settings(self.config, epochs, per_epoch, device, self.progress,
                                   switches),
            checkpoint_path=self.output_dir / LATEST_CHECKPOINT,
            meta=self.meta(train_ids=self.train_ids, val_ids=self.val_ids,
                           pretrained=str(self.pretrained) if self.pretrained else None,
                           pretrained_transfer=self.transfer),
            context=context, callbacks=callbacks)

    def run(self, resume: bool = False) -> nn.Module:
        """Train to the end of the budget (``resume``: from checkpoint_latest.pt); returns the
        trained network, in its DDP or compile wrappers if any.

        Raises:
            CheckpointError: a previous run exists and ``resume`` is False (nothing is
                overwritten silently), or the checkpoint belongs to other settings.
        """
        latest = self.output_dir / LATEST_CHECKPOINT
        check_fresh_or_resume(self.output_dir, latest, self.fold, resume)
        loop = self.build_loop()
        if resume and latest.exists():
            loop.resume(latest, expect={"plan": self.plan.to_dict(),
                                        "trainer_config": self.config.to_dict()})
        loop.run()
        if loop.context.is_main:
            weights = unwrap_model(loop.model).state_dict()
            save_fold_model(self.output_dir / FINAL_CHECKPOINT, weights, self.meta())
        loop.context.barrier()
        return loop.model
