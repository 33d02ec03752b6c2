"""Pre-training and fine-tuning: the ``pretrain`` and ``train_fold`` commands as functions.

The runs themselves live in :mod:`swinfuse_auto.stages`; they import torch, so they are imported
on the first call and planning never pays for them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from swinfuse_auto.api.progress import progress_for
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_PRETRAINER, DEFAULT_TRAINER


def pretrain(dataset: str | os.PathLike[str], planner: str = DEFAULT_PLANNER,
             iterations: int | None = None, extra: Sequence[Sequence[str]] | None = None,
             trainer: str = DEFAULT_PRETRAINER, config_overrides: list[str] | None = None,
             device: str = "auto", num_processes: int = 1, restart: bool = False,
             preprocessed: str | None = None, results: str | None = None, raw: str | None = None,
             progress: bool = False) -> Path:
    """Pre-train the dataset's Swin-DIM encoder self-supervised; returns ``pretrained_encoder.pt``.

    Every image of the dataset (training and imagesTs, each channel as its own image, tagged CT,
    MR or other) plus the ``extra`` folders is used. An interrupted run resumes unless
    ``restart``; a finished one is reused as it is. Under torchrun every rank trains and rank 0
    writes.

    Args:
        dataset: dataset folder name, numeric id or path.
        planner: the planner whose plans.json to use.
        iterations: optimiser steps (default: the plan's budget).
        extra: ``(folder, modality)`` pairs of unlabelled images to add (modality CT, MR or
            other).
        trainer: a registered pre-training recipe.
        config_overrides: ``KEY=VALUE`` settings of the recipe (``pretrain --set``); a key the
            recipe does not accept is an error that lists the accepted ones.
        device: "auto", "cpu" or "cuda".
        num_processes: worker processes for preprocessing the ``extra`` folders.
        restart: discard an existing or interrupted run.
        preprocessed, results, raw: roots overriding the environment variables.
        progress: draw progress bars.

    Raises:
        ConfigError: a budget below 1 step, a setting the recipe does not accept, a fine-tuning
            recipe, a plan of another planner or a bad ``extra`` folder; all checked before
            anything is written.
        RegistryError: an unknown recipe.
    """
    from swinfuse_auto.stages.pretraining import run_pretraining

    return run_pretraining(dataset, planner=planner, iterations=iterations, extra=extra,
                           trainer=trainer, config_overrides=config_overrides, device=device,
                           num_processes=num_processes, restart=restart,
                           preprocessed=preprocessed, results=results, raw=raw,
                           progress=progress_for(progress))


def train_fold(dataset: str | os.PathLike[str], fold: int | str, pretrain_choice: str = "auto",
               trainer: str = DEFAULT_TRAINER, planner: str = DEFAULT_PLANNER,
               epochs: int | None = None, iterations_per_epoch: int | None = None,
               config_overrides: list[str] | None = None, continue_training: bool = False,
               validate: bool = True, device: str = "auto", raw: str | None = None,
               preprocessed: str | None = None, results: str | None = None,
               progress: bool = False, preset: str | None = None) -> Path:
    """Fine-tune fold ``fold`` ('all' trains on every case); returns the fold folder.

    The settings are the recipe's defaults, then ``preset`` (default: the preset the plan names
    for this dataset), then ``config_overrides`` and the budget arguments. The held-out cases
    are predicted and scored at full volume at the end (``fold_K/validation/summary.json``).

    Args:
        dataset: dataset folder name, numeric id or path.
        fold: fold index of ``splits_final.json``, or "all".
        pretrain_choice: "auto" (the dataset's pre-trained encoder, made once if missing),
            "none" (random initialisation) or the path of a ``pretrained_encoder.pt``.
        trainer: a registered fine-tuning recipe.
        planner: the planner whose plans.json to use.
        epochs, iterations_per_epoch: the budget (default: the recipe's for the plan's device).
        config_overrides: ``KEY=VALUE`` settings of the recipe (``train_fold --set``).
        continue_training: resume from the fold's ``checkpoint_latest.pt``.
        validate: run the full-volume validation at the end.
        device: "auto", "cpu" or "cuda".
        raw, preprocessed, results: roots overriding the environment variables.
        progress: draw progress bars.
        preset: named settings of the recipe (``trainers/presets.py``).

    Raises:
        ConfigError: unknown fold or pretrain choice, a setting the recipe does not accept, a
            pre-training recipe, or a budget below 1 step; checked before anything is written.
        CheckpointError: the fold was trained before and ``continue_training`` is False.
        PlanError / PreprocessingError: the dataset was not planned or preprocessed.
    """
    from swinfuse_auto.stages.fold_training import run_fold_training

    return run_fold_training(dataset, fold, pretrain_choice=pretrain_choice, trainer=trainer,
                             planner=planner, epochs=epochs,
                             iterations_per_epoch=iterations_per_epoch,
                             config_overrides=config_overrides,
                             continue_training=continue_training, validate=validate,
                             device=device, raw=raw, preprocessed=preprocessed, results=results,
                             progress=progress_for(progress), preset=preset)
