"""The self-supervised pre-training model: Swin-DIM encoder plus the SwinFUSE heads.

Heads follow Tang et al. (CVPR 2022) with the SwinFUSE density term: rotation (4 classes) and
contrastive projection (to 512) from the pooled bottleneck, inpainting of the whole crop from the
bottleneck, and the pooled bottleneck itself as the embedding whose CT and MR densities the
Jensen-Shannon term pulls together. Heads read the *pooled* bottleneck rather than MONAI's first
and second bottleneck tokens, so they see the whole crop whatever its size.

The contrastive projection is SimCLR's MLP with batch normalisation, not a single linear layer.
Pooled bottlenecks of different crops share a large common component (cosine similarity
0.97-0.998 between any two crops of the example data, at initialisation and after 300 steps), so
through a linear head every pair looks alike, NT-Xent sits at ln 3 for two pairs and gives no
gradient; the density term then met no resistance and collapsed all embeddings to one point
(spread across samples 0.0017). Batch normalisation removes the common component, so NT-Xent
separates crops and counters that collapse. It needs at least two rows in training, which the
two views always give.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.swin import SwinEncoder

ROTATION_CLASSES = 4
CONTRASTIVE_DIM = 512


@dataclass
class PretrainingOutputs:
    """What one pre-training forward pass returns (batch B, or 2B with a partner).

    Attributes:
        rotation_logits: (B, 4) logits of the rotation class (0, 90, 180, 270 degrees).
        contrastive: (B, 512) projections for NT-Xent.
        reconstruction: (B, in_channels, Z, Y, X) inpainted crop.
        embedding: (B, bottleneck channels) pooled bottleneck for density matching.
    """

    rotation_logits: torch.Tensor
    contrastive: torch.Tensor
    reconstruction: torch.Tensor
    embedding: torch.Tensor


class InpaintingDecoder(nn.Module):
    """Light decoder: one transposed-conv x2 step per encoder down-sampling, halving channels.

    There are no skip connections on purpose: the reconstruction must come from the bottleneck,
    or the encoder could pass the visible voxels straight through.
    """

    def __init__(self, arch: SwinArchitecture) -> None:
        super().__init__()
        steps = len(arch.depths) + 1
        widths = [arch.feature_size * 2 ** (steps - 1 - i) for i in range(steps)]
        widths.append(max(arch.feature_size // 2, arch.in_channels))
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False),
                       nn.InstanceNorm3d(cout), nn.LeakyReLU(0.01, inplace=True)]
        layers.append(nn.Conv3d(widths[-1], arch.in_channels, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        return self.layers(bottleneck)


class SwinPretrainingModel(nn.Module):
    """Encoder and heads for SwinFUSE pre-training.

    Args:
        arch: sizes; ``in_channels`` is normally 1 (each channel is its own image).

    Example:
        >>> model = SwinPretrainingModel(SwinArchitecture(in_channels=1, num_classes=2,
        ...                                               feature_size=12))
        >>> out = model(torch.zeros(2, 1, 64, 64, 64))
        >>> out.rotation_logits.shape, out.embedding.shape
        (torch.Size([2, 4]), torch.Size([2, 192]))
    """

    def __init__(self, arch: SwinArchitecture) -> None:
        super().__init__()
        self.arch = arch
        self.encoder = SwinEncoder(arch)
        bottleneck = arch.feature_size * 2 ** len(arch.depths)
        self.rotation_head = nn.Linear(bottleneck, ROTATION_CLASSES)
        self.contrastive_head = nn.Sequential(
            nn.Linear(bottleneck, CONTRASTIVE_DIM), nn.BatchNorm1d(CONTRASTIVE_DIM),
            nn.ReLU(inplace=True), nn.Linear(CONTRASTIVE_DIM, CONTRASTIVE_DIM))
        self.inpainting = InpaintingDecoder(arch)

    def forward(self, x: torch.Tensor, partner: torch.Tensor | None = None) -> PretrainingOutputs:
        """Run the heads on ``x`` (and ``partner``, the DIM co-attention partner of the same shape).

        With a partner every output's batch holds ``x``'s samples followed by ``partner``'s, so
        the contrastive loss pairs row i with row i + B.
        """
        bottleneck = self.encoder(x, partner)[-1]
        pooled = bottleneck.mean(dim=(2, 3, 4))
        return PretrainingOutputs(
            rotation_logits=self.rotation_head(pooled),
            contrastive=self.contrastive_head(pooled),
            reconstruction=self.inpainting(bottleneck),
            embedding=pooled)
