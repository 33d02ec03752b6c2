"""Pieces every trainer recipe assembles the same way: the model's wrappers, the optimiser and
its schedule, the loop settings from the config, the run log."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from swinfuse_auto.io.atomic import write_json
from swinfuse_auto.models.device import autocast_dtype
from swinfuse_auto.paths import TRAINING_LOG
from swinfuse_auto.progress import Progress
from swinfuse_auto.training.config import TrainerConfig
from swinfuse_auto.training.distributed import DistributedContext
from swinfuse_auto.training.loop import LoopSettings, TrainingLoop
from swinfuse_auto.training.schedules import warmup_cosine


def build_adamw(model: nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW without weight decay on norms, biases and position tables (they are not weights
    whose magnitude should shrink)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        skip = parameter.ndim <= 1 or "position" in name or "bias_table" in name
        (no_decay if skip else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate)


def optimisation(model: nn.Module, config: TrainerConfig, total_steps: int, warmup_steps: int
                 ) -> tuple[torch.optim.AdamW, Callable[[int], float]]:
    """The config's AdamW and its learning-rate factor per step: linear warm-up over
    ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    optimizer = build_adamw(model, config.learning_rate, config.weight_decay)
    return optimizer, lambda step: warmup_cosine(step, total_steps, warmup_steps)


def prepare_model(network: nn.Module, context: DistributedContext, device: torch.device,
                  compile_model: bool = False) -> nn.Module:
    """The network (already on ``device``) in DDP under torchrun, then compiled when asked.

    Checkpoints are written from :func:`swinfuse_auto.models.unwrap.unwrap_model` of the
    result, so neither wrapper changes a tensor name.
    """
    model = network
    if context.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)
    return torch.compile(model) if compile_model else model  # type: ignore[return-value]


def loop_settings(config: TrainerConfig, epochs: int, iterations_per_epoch: int,
                  device: torch.device, progress: Progress | None,
                  new_batches_at_epochs: tuple[int, ...] = ()) -> LoopSettings:
    """The loop's budget, clipping and autocast (bf16 on GPUs when ``config.amp``)."""
    return LoopSettings(epochs, iterations_per_epoch, config.grad_clip,
                        autocast_dtype(device) if config.amp else None, progress,
                        new_batches_at_epochs)


def epochs_for(total_iterations: int, iterations_per_epoch: int) -> tuple[int, int]:
    """(epochs, iterations per epoch) covering ``total_iterations`` steps."""
    per_epoch = max(1, min(iterations_per_epoch, total_iterations))
    return math.ceil(total_iterations / per_epoch), per_epoch


class RunLogWriter:
    """Epoch callback writing ``training_log.json`` (and the curves PNG when a plotter is given)."""

    def __init__(self, folder: Path, header: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.header = header

    def __call__(self, loop: TrainingLoop, record: dict[str, float]) -> None:
        if not loop.context.is_main:
            return
        write_json(self.folder / TRAINING_LOG, {**self.header, "epochs": loop.history})
