"""The pre-trained encoder file and how fine-tuning adopts it (cf. nnssl's adaptation plans).

``pretrained_encoder.pt`` holds the encoder weights (``weights_only`` loadable) and a JSON block
saying how to rebuild and use them: architecture, patch size, spacing, normalisation per
modality and which data the encoder saw. Fine-tuning on this dataset or another one reads that
block, inflates the single-channel stem to C channels and loads every encoder tensor; it fails
instead of starting from scratch when nothing matches. Before the file is written, the same
transfer is tried once on the plan's segmentation network, so a broken checkpoint is caught
when it is made rather than when a fold starts.
"""

from __future__ import annotations

import logging
import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.models.checkpoint import load_checkpoint, save_checkpoint
from swinfuse_auto.models.unwrap import unwrap_model
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.factory import build_segmentation_network
from swinfuse_auto.networks.transfer import load_encoder_weights
from swinfuse_auto.plans.migrations import migrate_architecture
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.typed_json import to_jsonable

logger = logging.getLogger(__name__)
ENCODER_KIND = "swinfuse_pretrained_encoder"


def adaptation_block(plan: Plan, data_seen: dict[str, Any], iterations: int) -> dict[str, Any]:
    """The JSON metadata of an encoder checkpoint: everything a fine-tuning run must know."""
    encoder_arch = dataclasses.replace(plan.architecture, in_channels=1)
    return {"kind": ENCODER_KIND, "architecture": encoder_arch.to_dict(),
            "patch_size": list(plan.pretraining.patch_size),
            "spacing": list(plan.configuration.spacing),
            "normalization_per_modality": to_jsonable(plan.pretraining.modality_normalization),
            "data_seen": data_seen, "iterations": iterations,
            "source_dataset": plan.dataset_name, "source_planner": plan.planner}


def encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder tensors of a pre-training model, under the segmentation network's names."""
    return {f"encoder.{k}": v.detach().cpu().clone()
            for k, v in unwrap_model(model).encoder.state_dict().items()}


def transfer_into(network: nn.Module, state: dict[str, torch.Tensor],
                  source: Path | str) -> dict[str, int]:
    """Load ``state`` into a segmentation network's encoder; counts of loaded/adapted/missing."""
    loaded, missing, adapted = load_encoder_weights(network, state)
    if missing:
        raise CheckpointError(f"{source}: {len(missing)} encoder tensors are not in the "
                              f"checkpoint (e.g. {missing[:3]}); it was made for another "
                              "architecture. Pre-train again with this plan or use --pretrain none.")
    fresh = sum(1 for k in network.state_dict() if not k.startswith("encoder."))
    logger.info("%s: loaded %d encoder tensors (%d adapted to the channel count); %d decoder "
                "tensors start from their initialisation", source, len(loaded), len(adapted), fresh)
    return {"loaded": len(loaded), "adapted": len(adapted), "decoder_fresh": fresh}


def save_encoder(path: Path, model: nn.Module, plan: Plan, data_seen: dict[str, Any],
                 iterations: int) -> None:
    """Write the encoder file after checking it transfers into the plan's network."""
    state = encoder_state(model)
    transfer_into(build_segmentation_network(plan.architecture), state, path)
    save_checkpoint(path, {"encoder": state}, adaptation_block(plan, data_seen, iterations))


def load_encoder(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Encoder tensors and adaptation block of a file written by :func:`save_encoder`.

    The architecture of a file written before plan schema 3 is read with the names of today
    (``patch_embed_stride``), as an old plan is.
    """
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != ENCODER_KIND or "encoder" not in tensors:
        raise CheckpointError(f"{path} is not a pre-trained Swin-DIM encoder (kind "
                              f"{meta.get('kind')!r}); pass a pretrained_encoder.pt.")
    return tensors["encoder"], {**meta, "architecture": migrate_architecture(meta["architecture"])}


def check_compatible(meta: dict[str, Any], plan: Plan, source: Path) -> None:
    """Fail early when the encoder's architecture cannot serve this plan's network."""
    encoder = SwinArchitecture.from_dict(meta["architecture"])
    target = plan.architecture
    fields = ("feature_size", "depths", "num_heads", "window_size", "patch_embed_stride", "dim")
    differing = [f for f in fields if getattr(encoder, f) != getattr(target, f)]
    if differing:
        raise CheckpointError(
            f"{source}: the encoder was pre-trained with a different architecture ("
            + ", ".join(f"{f} {getattr(encoder, f)} vs plan {getattr(target, f)}" for f in differing)
            + "). Pre-train with this plan (--pretrain auto) or fine-tune with --pretrain none.")
