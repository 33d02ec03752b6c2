"""The SwinFUSE pre-training step: two views per crop, four losses, one total.

Views are generated on the training device from a seed carried in the batch, so they are as
reproducible as the crops themselves and cost no data-loader time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from swinfuse_auto.data.pretraining_data import MIN_PRETRAINING_BATCH
from swinfuse_auto.data.ssl_views import make_views
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.training.ssl_losses import (DENSITY_GROUPS, PretrainingLossWeights,
                                               combine_losses, density_matching_loss,
                                               inpainting_loss, nt_xent_loss, rotation_loss)


@dataclass
class PretrainingTask:
    """Computes the pre-training losses of a batch from :class:`PretrainingBatches`.

    Args:
        model: :class:`SwinPretrainingModel` (possibly DDP-wrapped); view 2 is the DIM partner
            of view 1, so the co-attention sees both views of each crop.
        device: where the batch is moved.
        weights: weight of each loss part.
        temperature: NT-Xent temperature.
    """

    model: nn.Module
    device: torch.device
    weights: PretrainingLossWeights
    temperature: float = 0.5

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["image"].to(self.device, non_blocking=True)
        modality = batch["modality"].to(self.device)
        self._check_batch(modality)
        generator = torch.Generator(device="cpu").manual_seed(int(batch["view_seed"]))
        views = make_views(x, generator)
        out = self.model(views.view1, views.view2)
        size = x.shape[0]
        parts = {
            "inpainting": inpainting_loss(out.reconstruction.float(),
                                          torch.cat([views.target1, views.target2]),
                                          torch.cat([views.mask1, views.mask2])),
            "rotation": rotation_loss(out.rotation_logits.float(),
                                      torch.cat([views.rotation1, views.rotation2])),
            "contrastive": nt_xent_loss(out.contrastive[:size].float(),
                                        out.contrastive[size:].float(), self.temperature),
        }
        if self.weights.density_matching > 0:
            parts["density_matching"] = density_matching_loss(out.embedding.float(),
                                                              torch.cat([modality, modality]))
        parts["loss"] = combine_losses(parts, self.weights)
        return parts

    def _check_batch(self, modality: torch.Tensor) -> None:
        """A term that cannot be computed must not enter the log as a silent 0."""
        if modality.shape[0] < MIN_PRETRAINING_BATCH:
            raise ConfigError(f"a pre-training batch of {modality.shape[0]} crop leaves "
                              "contrastive coding without a negative; use at least "
                              f"{MIN_PRETRAINING_BATCH} crops per batch.")
        present = set(modality.tolist())
        if self.weights.density_matching > 0 and not set(DENSITY_GROUPS) <= present:
            raise ConfigError("density matching is on but this batch lacks CT or MR crops; "
                              "batches must hold every modality (PretrainingBatches does).")
