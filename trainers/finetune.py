"""``swin_dim_finetune``: Swin-DIM UNETR segmentation of one cross-validation fold."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from swinfuse_auto.data.augmentation import build_training_augmentation
from swinfuse_auto.data.segmentation_data import SegmentationBatches
from swinfuse_auto.data.step_loader import step_batches
from swinfuse_auto.dataset.spec import parse_dataset_json
from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.inference.fold_ensemble import EnsemblePredictor, PredictionSettings
from swinfuse_auto.models.device import autocast_dtype
from swinfuse_auto.models.encoder_file import check_compatible, load_encoder, transfer_into
from swinfuse_auto.models.fold_model import FOLD_MODEL_KIND, save_fold_model
from swinfuse_auto.models.unwrap import unwrap_model
from swinfuse_auto.networks.factory import build_segmentation_network
from swinfuse_auto.paths import BEST_CHECKPOINT, FINAL_CHECKPOINT, LATEST_CHECKPOINT
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.progress import Progress
from swinfuse_auto.registry import TRAINERS
from swinfuse_auto.training.config import TrainerConfig
from swinfuse_auto.training.distributed import init_distributed
from swinfuse_auto.training.loop import LoopSettings, TrainingLoop
from swinfuse_auto.training.run_setup import RunLogWriter, build_adamw, wrap_distributed
from swinfuse_auto.training.schedules import warmup_cosine
from swinfuse_auto.training.segmentation_task import PseudoDice, SegmentationTask
from swinfuse_auto.training.self_training import PSEUDO_FOLDER, CombinedStore, plan_self_training
from swinfuse_auto.visualization.curves import CurvePlotter

logger = logging.getLogger(__name__)
#: (epochs, iterations per epoch) when the config leaves them unset (None), by the plan's device.
DEFAULT_BUDGET = {"cuda": (300, 250), "cpu": (10, 25)}


@TRAINERS.register("swin_dim_finetune")
@dataclass
class FinetuneTrainer:
    """Trains fold ``fold`` of ``plan`` on the cases of ``train_ids``.

    Args:
        plan: the dataset's plan.
        dataset_json: the raw dataset.json (stored in the model for prediction).
        store: the preprocessed training cases.
        train_ids, val_ids: the fold's split (val empty for fold 'all').
        fold: fold index or "all".
        output_dir: the fold folder.
        config: recipe values (see TrainerConfig).
        pretrained: encoder file to start from, or None for random initialisation.
        unlabelled: the dataset's preprocessed unlabelled images (imagesTs), which
            self-training pseudo-labels where they are of another modality.
    """

    plan: Plan
    dataset_json: dict[str, Any]
    store: CaseStore
    train_ids: list[str]
    val_ids: list[str]
    fold: str
    output_dir: Path
    config: TrainerConfig = field(default_factory=lambda: FinetuneTrainer.default_config())
    pretrained: Path | None = None
    device: str = "auto"
    progress: Progress | None = None
    unlabelled: CaseStore | None = None
    #: tensor counts of the encoder transfer (loaded / adapted / decoder_fresh), for the log
    transfer: dict[str, int] | None = field(default=None, init=False)

    name = "swin_dim_finetune"

    @staticmethod
    def default_config() -> TrainerConfig:
        return TrainerConfig(epochs=None, iterations_per_epoch=None, learning_rate=2e-4,
                             weight_decay=1e-5, warmup_fraction=0.02, grad_clip=12.0)

    def budget(self) -> tuple[int, int]:
        """(epochs, iterations per epoch): the config's, else the default for the device."""
        return self.config.budget(*DEFAULT_BUDGET[self.plan.target.kind])

    def meta(self) -> dict[str, Any]:
        return {"kind": FOLD_MODEL_KIND, "plan": self.plan.to_dict(),
                "dataset_json": self.dataset_json, "fold": self.fold, "trainer": self.name,
                "trainer_config": self.config.to_dict(), "train_ids": self.train_ids,
                "val_ids": self.val_ids,
                "pretrained": str(self.pretrained) if self.pretrained else None,
                "pretrained_transfer": self.transfer}

    def build_network(self) -> torch.nn.Module:
        torch.manual_seed(self.config.seed)
        network = build_segmentation_network(self.plan.architecture,
                                             deep_supervision=self.config.deep_supervision)
        if self.pretrained is not None:
            state, meta = load_encoder(self.pretrained)
            check_compatible(meta, self.plan, self.pretrained)
            self.transfer = transfer_into(network, state, self.pretrained)
        return network

    def _batches(self, store: Any, case_ids: list[str], augment: bool) -> SegmentationBatches:
        patch = self.plan.configuration.patch_size
        augmentation = (build_training_augmentation(patch, self.config.augmentation) if augment
                        else None)
        return SegmentationBatches(store, case_ids, patch, self.plan.configuration.batch_size,
                                   self.config.foreground_oversampling, augmentation,
                                   self.config.input_scaling)

    def _predictor(self, model: torch.nn.Module, device: torch.device
                   ) -> Callable[[Any], torch.Tensor]:
        """Whole-volume probabilities of the network being trained (for pseudo-labels)."""
        network = unwrap_model(model)
        ensemble = EnsemblePredictor([network], self.plan, self.dataset_json, [self.fold], device,
                                     PredictionSettings(mirror_axes=()), self.config.input_scaling)

        def predict(volume: Any) -> torch.Tensor:
            network.eval()
            try:
                return ensemble.predict(volume)
            finally:
                network.train()

        return predict

    def _training_batches(self, model: torch.nn.Module, device: torch.device, context: Any,
                          epochs: int, per_epoch: int
                          ) -> tuple[Callable[[int], Iterator[Any]], tuple[int, ...]]:
        """start step -> batches, and the epochs where the source changes: from the switch epoch
        of self-training on, labelled and pseudo-labelled cases together."""
        labelled = self._batches(self.store, self.train_ids, True)
        schedule = plan_self_training(
            self.config.self_training, self.config.self_training_fraction,
            self.config.pseudo_label_confidence, epochs, self.unlabelled,
            tuple(m.value for m in parse_dataset_json(self.dataset_json, Path()).modalities),
            self.output_dir / PSEUDO_FOLDER)

        def batches(start: int) -> Iterator[Any]:
            source = labelled
            if schedule is not None and start >= schedule.switch_epoch * per_epoch:
                pseudo = schedule.pseudo_labels(self._predictor(model, device),
                                                self.plan.architecture.num_classes, context)
                keys = pseudo.case_keys()
                source = self._batches(CombinedStore([(self.store, self.train_ids),
                                                      (pseudo, keys)]),
                                       self.train_ids + keys, True)
            return step_batches(source, start, self.config.seed, context.rank,
                                self.config.num_workers)

        return batches, (schedule.switch_epoch,) if schedule is not None else ()

    def build_loop(self) -> TrainingLoop:
        """Device, network (with the pre-trained encoder), data and optimiser."""
        context, device = init_distributed(self.device)
        epochs, per_epoch = self.budget()
        network = self.build_network().to(device)
        model = wrap_distributed(network, context, device)
        if self.config.compile:
            model = torch.compile(model)
        batches, switches = self._training_batches(model, device, context, epochs, per_epoch)
        total = epochs * per_epoch
        warmup = max(1, int(self.config.warmup_fraction * total))
        callbacks: list[Any] = []
        if self.val_ids:
            val = self._batches(self.store, self.val_ids, False)
            callbacks.append(PseudoDice(
                lambda start: step_batches(val, start, self.config.seed + 1, 0, 0),
                model, device, self.plan.architecture.num_classes,
                self.config.validation_batches_per_epoch,
                lambda loop: loop.save(self.output_dir / BEST_CHECKPOINT)))
        callbacks += [RunLogWriter(self.output_dir, {"trainer": self.name, "fold": self.fold}),
                      CurvePlotter(self.output_dir / "progress.png")]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        return TrainingLoop(
            model=model,
            optimizer=build_adamw(model, self.config.learning_rate, self.config.weight_decay),
            lr_factor=lambda step: warmup_cosine(step, total, warmup),
            loss_fn=SegmentationTask(model, device),
            batches=batches,
            settings=LoopSettings(epochs, per_epoch, self.config.grad_clip,
                                  autocast_dtype(device) if self.config.amp else None,
                                  self.progress, switches),
            checkpoint_path=self.output_dir / LATEST_CHECKPOINT,
            meta=self.meta(), context=context, callbacks=callbacks)

    def train(self, resume: bool = False) -> TrainingLoop:
        """Train to the end of the budget; ``resume`` continues from checkpoint_latest.pt.

        Raises:
            CheckpointError: a previous run exists and ``resume`` is False (nothing is
                overwritten silently), or the checkpoint belongs to other settings.
        """
        latest = self.output_dir / LATEST_CHECKPOINT
        if latest.exists() and not resume:
            raise CheckpointError(f"{latest} exists: fold {self.fold} was trained before. Pass "
                                  "--continue to resume it, or delete the fold folder to start "
                                  "again.")
        if not latest.exists():  # a fresh run: pseudo-labels of an earlier one are stale
            shutil.rmtree(self.output_dir / PSEUDO_FOLDER, ignore_errors=True)
        loop = self.build_loop()
        if resume and latest.exists():
            loop.resume(latest, expect={"plan": self.plan.to_dict(),
                                        "trainer_config": self.config.to_dict()})
        loop.run()
        if loop.context.is_main:
            weights = unwrap_model(loop.model).state_dict()
            save_fold_model(self.output_dir / FINAL_CHECKPOINT, weights, self.plan,
                            self.dataset_json, self.fold, self.name, self.config.to_dict())
        loop.context.barrier()
        return loop
