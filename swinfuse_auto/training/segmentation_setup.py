"""How a fine-tuning run starts: the network with the pre-trained encoder, its batches, and the
switch to pseudo-labelled cases when it self-trains.

These are the pieces a fine-tuning recipe assembles; a variant recipe reuses them and changes
only what it is about.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swinfuse_auto.data.augmentation import build_training_augmentation
from swinfuse_auto.data.segmentation_data import SegmentationBatches
from swinfuse_auto.data.step_loader import step_batches
from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.models.encoder_file import check_compatible, load_encoder, transfer_into
from swinfuse_auto.networks.factory import build_segmentation_network
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.training.config import FinetuningConfig
from swinfuse_auto.training.distributed import DistributedContext
from swinfuse_auto.training.self_training import (PSEUDO_FOLDER, CombinedStore, class_shares,
                                                  plan_self_training)

#: Whole-volume probabilities of the network being trained: preprocessed volume -> (K, z, y, x).
VolumePredictor = Callable[[Any], torch.Tensor]


def initial_network(plan: Plan, config: FinetuningConfig, pretrained: Path | None
                    ) -> tuple[nn.Module, dict[str, int] | None]:
    """The segmentation network, seeded, with the pre-trained encoder loaded when given.

    Returns:
        The network and the counts of the encoder transfer (None without an encoder).

    Raises:
        CheckpointError: an encoder file of another architecture, or one that does not fit.
    """
    torch.manual_seed(config.seed)
    network = build_segmentation_network(plan.architecture,
                                         deep_supervision=config.deep_supervision,
                                         input_features=config.input_features)
    if pretrained is None:
        return network, None
    state, meta = load_encoder(pretrained)
    check_compatible(meta, plan, pretrained)
    return network, transfer_into(network, state, pretrained)


def segmentation_batches(plan: Plan, config: FinetuningConfig, store: Any, case_ids: list[str],
                         augment: bool) -> SegmentationBatches:
    """Batches of the plan's patch and batch size, augmented for training."""
    patch = plan.configuration.patch_size
    augmentation = build_training_augmentation(patch, config.augmentation) if augment else None
    return SegmentationBatches(store, case_ids, patch, plan.configuration.batch_size,
                               config.foreground_oversampling, augmentation, config.input_scaling)


def fold_batches(plan: Plan, config: FinetuningConfig, store: CaseStore, train_ids: list[str],
                 unlabelled: CaseStore | None, modalities: tuple[str, ...], output_dir: Path,
                 epochs: int, per_epoch: int, context: DistributedContext,
                 predictor: Callable[[], VolumePredictor]
                 ) -> tuple[Callable[[int], Iterator[Any]], tuple[int, ...]]:
    """Start step -> training batches, and the epochs where their source changes.

    Without self-training the source is the labelled cases throughout. With it, from the switch
    epoch on the batches come from labelled and pseudo-labelled cases together; the
    pseudo-labels are made then, once, by ``predictor()`` (the network at that moment).
    """
    labelled = segmentation_batches(plan, config, store, train_ids, True)
    schedule = plan_self_training(
        config.self_training, config.self_training_fraction, config.pseudo_label_confidence,
        epochs, unlabelled, modalities, output_dir / PSEUDO_FOLDER)

    def batches(start: int) -> Iterator[Any]:
        source = labelled
        if schedule is not None and start >= schedule.switch_epoch * per_epoch:
            pseudo = schedule.pseudo_labels(
                predictor(), lambda: class_shares(store, train_ids, plan.architecture.num_classes),
                context)
            keys = pseudo.case_keys()
            source = segmentation_batches(plan, config,
                                          CombinedStore([(store, train_ids), (pseudo, keys)]),
                                          train_ids + keys, True)
        return step_batches(source, start, config.seed, context.rank, config.num_workers)

    return batches, (schedule.switch_epoch,) if schedule is not None else ()


def check_fresh_or_resume(output_dir: Path, latest: Path, fold: str, resume: bool) -> None:
    """Refuse to overwrite a previous run; clear what a fresh one must not reuse.

    Raises:
        CheckpointError: ``latest`` exists and ``resume`` is False (nothing is overwritten
            silently).
    """
    if latest.exists() and not resume:
        raise CheckpointError(f"{latest} exists: fold {fold} was trained before. Pass "
                              "--continue to resume it, or delete the fold folder to start "
                              "again.")
    if not latest.exists():  # a fresh run: pseudo-labels of an earlier one are stale
        shutil.rmtree(output_dir / PSEUDO_FOLDER, ignore_errors=True)
