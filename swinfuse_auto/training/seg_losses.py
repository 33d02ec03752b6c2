"""Dice + cross-entropy, nnU-Net's segmentation loss.

Soft Dice is computed over the whole batch (one Dice per class, not per sample), which keeps it
defined when a class is missing from one patch, and excludes background, which would otherwise
dominate. Cross-entropy supplies well-behaved gradients early in training when Dice is flat.

Negative labels mark voxels the loss ignores (the unsure voxels of pseudo-labels in
self-training): they count neither in the Dice sums nor in the cross-entropy mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5,
                   include_background: bool = False) -> torch.Tensor:
    """1 - mean soft Dice over classes; ``target`` holds class indices, shape (B, 1, ...)."""
    probabilities = logits.float().softmax(1)
    ignored = target < 0
    if ignored.any():
        probabilities = probabilities * ~ignored
        target = target.clamp_min(0)
    one_hot = torch.zeros_like(probabilities).scatter_(1, target.long(), 1.0)
    if ignored.any():
        one_hot = one_hot * ~ignored
    start = 0 if include_background else 1
    probabilities, one_hot = probabilities[:, start:], one_hot[:, start:]
    axes = (0, *range(2, probabilities.ndim))
    intersection = (probabilities * one_hot).sum(axes)
    denominator = probabilities.sum(axes) + one_hot.sum(axes)
    dice = (2 * intersection + smooth) / (denominator + smooth)
    return 1 - dice.mean()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"dice_loss": ..., "ce_loss": ..., "loss": their sum} for (B, K, ...) logits and
    (B, 1, ...) labels.

    The keys say *loss*: the training log prints them, and 1 - Dice read as a Dice score
    ("dice 0.9564" after two steps of a random network) would look like a finished model.
    """
    dice = soft_dice_loss(logits, target)
    labels = target[:, 0].long()
    if (labels < 0).any():
        ce = (F.cross_entropy(logits.float(), labels, ignore_index=-1, reduction="sum")
              / (labels >= 0).sum().clamp_min(1))
    else:
        ce = F.cross_entropy(logits.float(), labels)
    return {"dice_loss": dice, "ce_loss": ce, "loss": dice + ce}


def deep_supervision_loss(outputs: list[torch.Tensor], target: torch.Tensor
                          ) -> dict[str, torch.Tensor]:
    """Dice+CE at every output scale, weights halving per scale (nnU-Net), normalised to 1.

    Lower-resolution targets are taken by nearest-neighbour down-sampling of the label.
    """
    weights = torch.tensor([0.5**i for i in range(len(outputs))])
    weights = weights / weights.sum()
    total: dict[str, torch.Tensor] = {}
    for weight, output in zip(weights.tolist(), outputs):
        scaled = target
        if output.shape[2:] != target.shape[2:]:
            scaled = F.interpolate(target.float(), size=output.shape[2:], mode="nearest").long()
        for key, value in dice_ce_loss(output, scaled).items():
            total[key] = total.get(key, 0) + weight * value
    return total
