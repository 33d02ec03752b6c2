"""What the network sees of an image: its intensities, or a modality-independent descriptor.

A network trained on CT intensities segments by absolute intensity (issue 11's probe: a CT model
scores 0.68 Dice on its CT and 0.03 on the same CT remapped tissue-wise to T1 values), and no
intensity augmentation tried at CPU budgets taught it otherwise. ``mind_ssc`` replaces each
input channel by its MIND-SSC descriptor (Heinrich et al., MICCAI 2013: "self-similarity
context"), the same idea DG-TTA (Weihsbach et al., 2023) uses as the domain-generalising input of
an nnU-Net: for twelve pairs of voxels around each position, how alike their neighbourhoods are,
relative to the local average. The descriptor depends on where edges are and how they run, not
on which side is brighter or by how much, so a CT and a T1 or T2 MR of the same anatomy give
similar inputs, and inverted or non-monotone contrasts give the same one.

The descriptor is a parameter-free first stage of the network (computed on each patch or tile,
on the device, in float32 whatever the autocast), so training, validation and ``predict`` can
never disagree on it, and a fold model rebuilds it from the trainer config's ``input_features``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from swinfuse_auto.registry import Registry


@dataclass(frozen=True)
class InputFeatures:
    """A registered input stage.

    Args:
        channels_per_image_channel: channels the stage makes of each image channel.
        build: the stage's module.
        pretrained_encoder_fits: whether an encoder pre-trained on intensities (what
            ``pretrain`` makes) is a good start for a network fed this stage. For MIND-SSC it
            is not: on the generated CT->MR benchmark, fine-tuning from it reached CT / T1 / T2
            0.846 / 0.335 / 0.398 against 0.866 / 0.515 / 0.579 from random weights, so
            ``--pretrain auto`` starts from random weights there.
    """

    channels_per_image_channel: int
    build: Callable[[], nn.Module]
    pretrained_encoder_fits: bool = True


INPUT_FEATURES: Registry[InputFeatures] = Registry("input features")

# The six face neighbours of a voxel; MIND-SSC compares the twelve pairs of them that lie
# sqrt(2) apart (each edge of the octahedron they span), never the centre with a neighbour.
_NEIGHBOURS = ((0, 1, 1), (1, 1, 0), (1, 0, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1))
_PAIRS = tuple((a, b) for a in range(6) for b in range(a + 1, 6)
               if sum((p - q) ** 2 for p, q in zip(_NEIGHBOURS[a], _NEIGHBOURS[b])) == 2)
#: Variance floor and ceiling, relative to the patch's mean, as in the MIND papers: flat regions
#: (air, a homogeneous organ) would otherwise turn noise into full-strength structure.
_VARIANCE_RANGE = (1e-3, 1e3)


class MindSSC(nn.Module):
    """MIND-SSC descriptor of every channel: (B, C, z, y, x) -> (B, 12 C, z, y, x) in [0, 1].

    Args:
        dilation: voxel distance of the neighbours (2: the pairs span 2-4 voxels, a few mm at
            the plans' spacings, wider than the noise grain, narrower than the small organs).
        sigma: Gaussian patch width of the neighbourhood distances, in voxels.
    """

    def __init__(self, dilation: int = 2, sigma: float = 0.8) -> None:
        super().__init__()
        self.dilation = dilation
        radius = max(1, round(2 * sigma))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
        # not persistent: the descriptor has no weights, so checkpoints are those of the
        # intensity network's layers and nothing else
        self.register_buffer("kernel", kernel / kernel.sum(), persistent=False)

    def _smooth(self, volume: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian over the three spatial axes of (N, 1, z, y, x), edges replicated."""
        radius = self.kernel.numel() // 2
        for axis in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = -1
            pad = [0, 0, 0, 0, 0, 0]
            pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
            volume = F.conv3d(F.pad(volume, pad, mode="replicate"), self.kernel.view(shape))
        return volume

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with torch.autocast(image.device.type, enabled=False):
            return self._descriptor(image.float())

    def _descriptor(self, image: torch.Tensor) -> torch.Tensor:
        batch, channels, *spatial = image.shape
        d = self.dilation
        padded = F.pad(image.reshape(batch * channels, 1, *spatial), [d] * 6, mode="replicate")

        def shifted(neighbour: int) -> torch.Tensor:
            start = [c * d for c in _NEIGHBOURS[neighbour]]
            return padded[:, :, start[0]:start[0] + spatial[0], start[1]:start[1] + spatial[1],
                          start[2]:start[2] + spatial[2]]

        views = [shifted(n) for n in range(6)]
        distances = torch.cat([self._smooth((views[a] - views[b]) ** 2) for a, b in _PAIRS], 1)
        distances = distances - distances.amin(dim=1, keepdim=True)
        variance = distances.mean(dim=1, keepdim=True)
        level = variance.mean(dim=(2, 3, 4), keepdim=True)
        variance = torch.maximum(torch.minimum(variance, level * _VARIANCE_RANGE[1]),
                                 level * _VARIANCE_RANGE[0] + 1e-12)
        descriptor = torch.exp(-distances / variance)
        descriptor = descriptor / descriptor.amax(dim=1, keepdim=True)
        return descriptor.reshape(batch, channels * len(_PAIRS), *spatial)


INPUT_FEATURES.register("intensity")(InputFeatures(1, nn.Identity))
INPUT_FEATURES.register("mind_ssc")(InputFeatures(len(_PAIRS), MindSSC,
                                                  pretrained_encoder_fits=False))
