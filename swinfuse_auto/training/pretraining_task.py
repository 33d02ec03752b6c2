"""The SwinFUSE pre-training step: two views per crop, four losses, one total.

Views are generated on the training device from a seed carried in the batch, so they are as
reproducible as the crops themselves and cost no data-loader time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from swinfuse_auto.data.pretraining_data import MIN_PRETRAINING_BATCH, minimum_batch_size
from swinfuse_auto.data.ssl_views import make_views
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.training.ssl_losses import (DENSITY_GROUPS, DENSITY_MODALITIES,
                                               PretrainingLossWeights, combine_losses,
                                               density_matching_loss, inpainting_loss, nt_xent_loss,
                                               rotation_loss)

logger = logging.getLogger(__name__)


def batch_size_for(planned: int, modalities: list[str]) -> int:
    """The plan's batch, raised (loudly) when the pool holds more modalities than it was
    planned for, e.g. MR images added with ``--extra`` to a CT-only plan."""
    needed = minimum_batch_size(modalities)
    if planned < needed:
        logger.warning("pre-training batch raised from %d to %d crop pairs so that every batch "
                       "holds every modality (%s) and contrastive coding has a negative; a step "
                       "costs more time and memory than the plan's estimate", planned, needed,
                       ", ".join(modalities))
    return max(planned, needed)


def density_weight_for(weight: float, modalities: list[str]) -> float:
    """The density-matching weight, or 0 with a loud warning when it cannot be computed.

    The term compares CT with MR embeddings; with one of them missing it would be a constant 0
    that looks like perfect alignment in the log, so it is switched off and said so instead.
    """
    missing = [m for m in DENSITY_MODALITIES if m not in modalities]
    if weight > 0 and missing:
        logger.warning("the density-matching term (CT/MR alignment, SwinFUSE's invariance loss) "
                       "is OFF: the pre-training images hold no %s (found: %s). Add images of "
                       "that modality (imagesTs cases tagged in case_channel_names, or pretrain "
                       "--extra DIR %s) to align the modalities.", " or ".join(missing),
                       ", ".join(modalities), missing[0])
        return 0.0
    return weight


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
