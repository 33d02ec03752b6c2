"""The fine-tuning step (Dice + CE, optionally deep supervision) and the per-epoch pseudo-Dice.

Pseudo-Dice (nnU-Net's name) is the Dice of a few held-out validation *patches* per epoch:
cheap enough for every epoch, good enough to pick the best checkpoint and to draw the curve. The
real, full-volume validation runs once at the end of the fold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from swinfuse_auto.training.seg_losses import deep_supervision_loss, dice_ce_loss


@dataclass
class SegmentationTask:
    """Loss of a batch {"image": (B, C, ...), "target": (B, 1, ...)} for the loop."""

    model: nn.Module
    device: torch.device

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image = batch["image"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        output = self.model(image)
        if isinstance(output, (list, tuple)):
            return deep_supervision_loss(list(output), target)
        return dice_ce_loss(output, target)


def batch_dice_counts(logits: torch.Tensor, target: torch.Tensor, num_classes: int
                      ) -> torch.Tensor:
    """(K-1, 3) true-positive, false-positive, false-negative voxel counts per foreground class."""
    prediction = logits.argmax(1)
    target = target[:, 0]
    rows = []
    for label in range(1, num_classes):
        p, t = prediction == label, target == label
        rows.append(torch.stack([(p & t).sum(), (p & ~t).sum(), (~p & t).sum()]))
    return torch.stack(rows).double().cpu()


@dataclass
class PseudoDice:
    """Epoch callback: Dice on ``batches_per_epoch`` validation patches, plus its moving average.

    Args:
        batches: start step -> iterator of validation batches (no augmentation); each epoch
            starts at ``epoch * batches_per_epoch`` so a resumed run sees the same patches.
        model: the network (unwrapped or DDP).
        save_best: called with the loop when the moving average reaches a new maximum.
    """

    batches: Callable[[int], Iterator[dict[str, torch.Tensor]]]
    model: nn.Module
    device: torch.device
    num_classes: int
    batches_per_epoch: int
    save_best: Callable[[Any], None]
    smoothing: float = 0.9

    def __call__(self, loop: Any, record: dict[str, float]) -> None:
        if self.batches_per_epoch <= 0:
            return
        counts = torch.zeros(self.num_classes - 1, 3, dtype=torch.float64)
        self.model.eval()
        iterator = self.batches((loop.epoch - 1) * self.batches_per_epoch)
        with torch.no_grad():
            for _ in range(self.batches_per_epoch):
                batch = next(iterator)
                output = self.model(batch["image"].to(self.device))
                output = output[0] if isinstance(output, (list, tuple)) else output
                counts += batch_dice_counts(output, batch["target"].to(self.device),
                                            self.num_classes)
        tp, fp, fn = counts.unbind(1)
        dice = (2 * tp / (2 * tp + fp + fn).clamp(min=1)).mean().item()
        history = [h["pseudo_dice_ema"] for h in loop.history[:-1] if "pseudo_dice_ema" in h]
        ema = dice if not history else self.smoothing * history[-1] + (1 - self.smoothing) * dice
        record.update(pseudo_dice=dice, pseudo_dice_ema=ema)
        if not history or ema > max(history):
            self.save_best(loop)
