"""The segmentation loss names its parts as losses, so the log cannot be read as Dice scores."""

from __future__ import annotations

import torch

from swinfuse_auto.training.seg_losses import deep_supervision_loss, dice_ce_loss


def test_the_parts_are_named_losses() -> None:
    target = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    target[..., :2] = 1
    perfect = torch.where(torch.cat([target == 0, target == 1], 1), 20.0, -20.0)
    losses = dice_ce_loss(perfect, target)
    assert set(losses) == {"dice_loss", "ce_loss", "loss"}
    assert losses["dice_loss"] < 1e-3  # a perfect prediction: Dice 1, Dice loss 0
    assert set(deep_supervision_loss([perfect, perfect[..., ::2, ::2, ::2]], target)) == \
        set(losses)
