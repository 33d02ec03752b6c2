"""Pieces every trainer recipe assembles the same way: optimiser, DDP wrapping, the run log."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from swinfuse_auto.io.atomic import write_json
from swinfuse_auto.paths import TRAINING_LOG
from swinfuse_auto.training.distributed import DistributedContext
from swinfuse_auto.training.loop import TrainingLoop



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


def wrap_distributed(model: nn.Module, context: DistributedContext,
                     device: torch.device) -> nn.Module:
    if not context.enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


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
