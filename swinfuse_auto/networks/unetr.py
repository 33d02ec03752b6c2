"""The Swin UNETR convolutional decoder and the Swin-DIM UNETR segmentation network.

The decoder is Swin UNETR's (Hatamizadeh et al. 2022): residual 3x3x3 conv blocks with instance
norm and LeakyReLU refine the input and each encoder scale, and transposed-conv up-sampling blocks
fuse them from the bottleneck back to the input resolution. Instance norm, not batch norm, because
batches are small and mix CT and MR crops.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.input_features import INPUT_FEATURES
from swinfuse_auto.networks.swin import SwinEncoder


#: state_dict prefix of the deep-supervision heads of :class:`SwinDIMUNETR` (training only)
AUX_HEADS_PREFIX = "decoder.aux_heads."


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm3d(channels)


class ResidualConvBlock(nn.Module):
    """conv-norm-LeakyReLU-conv-norm plus a (1x1-projected where needed) skip, then LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = _norm(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _norm(out_channels)
        self.act = nn.LeakyReLU(0.01, inplace=True)
        self.skip = (nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, bias=False),
                                   _norm(out_channels))
                     if in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(y + self.skip(x))


class UpBlock(nn.Module):
    """Transposed-conv x2 up-sampling, concatenation with the skip, residual conv block."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2, bias=False)
        self.block = ResidualConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.up(x), skip], dim=1))


class UNETRDecoder(nn.Module):
    """Decoder over the input image and the encoder's hidden states (1/2 ... 1/32).

    Args:
        arch: sizes; the decoder has one up-sampling block per hidden state.
        deep_supervision: also return logits at 1/2, 1/4 and 1/8 resolution.
    """

    def __init__(self, arch: SwinArchitecture, deep_supervision: bool = False) -> None:
        super().__init__()
        fs, stages = arch.feature_size, len(arch.depths)
        widths = [fs * 2 ** i for i in range(stages + 1)]  # channels of hidden states 0..stages
        self.input_block = ResidualConvBlock(arch.in_channels, fs)
        # Swin UNETR refines every hidden state but the deepest skip (1/16), used as it comes.
        self.skip_blocks = nn.ModuleList(ResidualConvBlock(w, w) for w in widths[:stages - 1])
        self.bottleneck_block = ResidualConvBlock(widths[-1], widths[-1])
        self.up_blocks = nn.ModuleList(UpBlock(widths[i + 1], widths[i])
                                       for i in reversed(range(stages)))
        self.up_blocks.append(UpBlock(fs, fs))
        self.head = nn.Conv3d(fs, arch.num_classes, 1)
        self.deep_supervision = deep_supervision
        levels = min(3, stages)
        self.aux_heads = (nn.ModuleList(nn.Conv3d(widths[i], arch.num_classes, 1)
                                        for i in range(levels))
                          if deep_supervision else None)

    def forward(self, x: torch.Tensor, hidden: list[torch.Tensor]
                ) -> torch.Tensor | list[torch.Tensor]:
        # The hidden states are channel-last views of the encoder's tokens; giving the image the
        # same layout keeps every convolution on oneDNN's channels-last path (the full-resolution
        # input block ran 1.5x faster on the CPU than in the default layout).
        x = x.contiguous(memory_format=torch.channels_last_3d)
        skips = [self.input_block(x)]
        skips += [block(h) for block, h in zip(self.skip_blocks, hidden)]
        skips.append(hidden[-2])
        y = self.bottleneck_block(hidden[-1])
        decoded = []
        for block, skip in zip(self.up_blocks, reversed(skips)):
            y = block(y, skip)
            decoded.append(y)
        logits = self.head(y)
        if not self.deep_supervision or self.aux_heads is None:
            return logits
        coarse = reversed(decoded[-1 - len(self.aux_heads):-1])
        return [logits] + [head(d) for head, d in zip(self.aux_heads, coarse)]


class SwinDIMUNETR(nn.Module):
    """Swin-DIM encoder plus Swin UNETR decoder: logits at the input's resolution.

    Args:
        arch: sizes and options.
        deep_supervision: return ``[full, 1/2, 1/4, 1/8]`` logits; toggle the attribute
            ``model.deep_supervision`` off for inference.
        input_features: registered input stage (:mod:`.input_features`): "intensity" feeds
            the image as it is, "mind_ssc" its modality-independent descriptor. The encoder
            and decoder are built for the channels that stage makes; ``arch`` stays the
            image's.

    Example:
        >>> net = SwinDIMUNETR(SwinArchitecture(in_channels=2, num_classes=3, feature_size=12))
        >>> net(torch.zeros(1, 2, 32, 64, 32)).shape
        torch.Size([1, 3, 32, 64, 32])
    """

    def __init__(self, arch: SwinArchitecture, deep_supervision: bool = False,
                 input_features: str = "intensity") -> None:
        super().__init__()
        features = INPUT_FEATURES.get(input_features)
        self.arch = arch
        self.input_features = features.build()
        inner = replace(arch, in_channels=arch.in_channels * features.channels_per_image_channel)
        self.encoder = SwinEncoder(inner)
        self.decoder = UNETRDecoder(inner, deep_supervision)

    @property
    def deep_supervision(self) -> bool:
        """Whether the forward pass returns the list of multi-resolution logits."""
        return self.decoder.deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, value: bool) -> None:
        if value and self.decoder.aux_heads is None:
            raise ConfigError("This network was built without deep-supervision heads; rebuild it "
                             "with deep_supervision=True.")
        self.decoder.deep_supervision = value

    def forward(self, x: torch.Tensor, partner: torch.Tensor | None = None
                ) -> torch.Tensor | list[torch.Tensor]:
        """Segment ``x``; a ``partner`` (same shape) drives the DIM's co-attention.

        With a partner the output's batch holds ``x``'s samples then ``partner``'s, as for
        :meth:`SwinEncoder.forward`.
        """
        x = self.input_features(x)
        partner = None if partner is None else self.input_features(partner)
        hidden = self.encoder(x, partner)
        image = x if partner is None else torch.cat([x, partner])
        return self.decoder(image, hidden)
