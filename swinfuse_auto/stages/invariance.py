"""How far apart a pre-trained encoder keeps CT and MR: the divergence of their embeddings.

The SwinFUSE claim is that density matching makes the encoder's features modality-invariant.
This measures it directly: pooled bottleneck embeddings of fixed, un-augmented crops of CT and
MR images, compared with the same sliced-KDE Jensen-Shannon divergence the loss uses, evaluated
on many crops at once rather than on one batch. 0 means indistinguishable, ln 2 disjoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from swinfuse_auto.data.pretraining_data import PoolEntry, PretrainingBatches
from swinfuse_auto.dataset.modality import MODALITY_INDEX, Modality
from swinfuse_auto.models.encoder_file import load_encoder
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.swin import SwinEncoder
from swinfuse_auto.training.ssl_losses import density_matching_loss


def load_encoder_network(path: Path) -> SwinEncoder:
    """The encoder of a ``pretrained_encoder.pt`` file, in eval mode on the CPU."""
    state, meta = load_encoder(path)
    encoder = SwinEncoder(SwinArchitecture.from_dict(meta["architecture"]))
    encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items()})
    return encoder.eval()


def fixed_crops(pool: list[PoolEntry], patch_size: tuple[int, int, int], per_modality: int,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_modality`` random crops of each of CT and MR: (N, 1, *patch) and modality codes."""
    images, codes = [], []
    for modality in (Modality.CT, Modality.MR):
        entries = [e for e in pool if e.modality == modality.value]
        if not entries:
            raise ValueError(f"no {modality.value} image in the pool")
        sampler = PretrainingBatches(entries, patch_size, per_modality)
        batch = sampler(np.random.default_rng([seed, MODALITY_INDEX[modality]]))
        images.append(batch["image"])
        codes += [MODALITY_INDEX[modality]] * per_modality
    return torch.cat(images), torch.tensor(codes)


@torch.no_grad()
def modality_divergence(encoder: SwinEncoder, crops: torch.Tensor, codes: torch.Tensor,
                        chunk: int = 4) -> float:
    """Sliced-KDE JSD between the pooled CT and MR bottleneck embeddings of ``crops``."""
    embeddings = torch.cat([encoder(crops[i:i + chunk])[-1].mean(dim=(2, 3, 4))
                            for i in range(0, len(crops), chunk)])
    return float(density_matching_loss(embeddings, codes))
