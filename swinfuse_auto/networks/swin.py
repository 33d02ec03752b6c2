"""The 3D Swin Transformer encoder of Swin UNETR, with the domain-invariance module after the stem.

Tokens stay channel-last, ``(batch, z, y, x, channels)``, from the patch embedding to the last
stage, so layer norms and linear layers run on contiguous rows and the only copies are the window
gather/scatter of each block (see :mod:`swinfuse_auto.networks.windows`) and each patch merging.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from swinfuse_auto.errors import PlanError
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.dim import DomainInvarianceModule
from swinfuse_auto.networks.windows import (Shape3D, WindowGroup, WindowLayout, to_map_order,
                                            to_window_order, window_layout)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples, rescaling the survivors."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    The bias table covers every offset of a full window, so border and shrunk windows index the
    sub-block of offsets they really have (MONAI slices the first n x n entries of the full
    window's index instead, which pairs shrunk windows' offsets with unrelated biases).
    """

    def __init__(self, channels: int, num_heads: int, window: Shape3D) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        spans = math.prod(2 * w - 1 for w in window)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(spans, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, layout: WindowLayout, batch: int) -> torch.Tensor:
        """Attend within the layout's windows.

        Args:
            x: (batch * tokens, channels), normalised, in map order.
            layout: the windows of this block for this map shape and batch.
            batch: images in ``x``.

        Returns:
            (batch * tokens, channels) in map order.
        """
        qkv = self.qkv(to_window_order(x, layout))
        outs = [self._attend(qkv, group, batch) for group in layout.groups]
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return to_map_order(self.proj(out), layout)

    def _attend(self, qkv: torch.Tensor, group: WindowGroup, batch: int) -> torch.Tensor:
        n, windows = group.tokens, batch * group.count
        rows = qkv[group.start:group.start + windows * n]
        q, k, v = rows.view(windows, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table.index_select(0, group.relative_index.view(-1))
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1).to(q.dtype)
        # A 4D mask (1, heads, n, n) lets torch use its fused CPU kernel in inference, 4-5x
        # faster than the unfused path a 3D mask takes; training, where the bias needs a
        # gradient, takes the unfused path either way (the results agree to 2e-6).
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
        return out.transpose(1, 2).reshape(windows * n, qkv.shape[1] // 3)


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each a residual branch."""

    def __init__(self, channels: int, num_heads: int, window: Shape3D, shift: Shape3D,
                 drop_path: float, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(channels)
        self.attn = WindowAttention(channels, num_heads, window)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(),
                                 nn.Linear(hidden, channels))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, z, y, x, C) -> same shape."""
        batch, depth, height, width, channels = x.shape
        layout = window_layout((depth, height, width), self.window, self.shift, batch, x.device)
        tokens = x.reshape(batch, -1, channels)
        attn = self.attn(self.norm1(tokens).view(-1, channels), layout, batch)
        tokens = tokens + self.drop_path(attn.view_as(tokens))
        tokens = tokens + self.drop_path(self.mlp(self.norm2(tokens)))
        return tokens.view_as(x)


class PatchMerging(nn.Module):
    """Halve each axis by concatenating 2x2x2 neighbours (8C), normalising and projecting to 2C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8 * channels)
        self.reduction = nn.Linear(8 * channels, 2 * channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, c = x.shape
        x = x.view(b, d // 2, 2, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
        return self.reduction(self.norm(x.reshape(b, d // 2, h // 2, w // 2, 8 * c)))


class PatchEmbedding(nn.Module):
    """Non-overlapping p^3 patches -> feature_size channels, emitted channel-last.

    Equivalent to a stride-p convolution (the weight keeps the Conv3d shape, so checkpoints and
    channel inflation treat it as one), but computed as one gather plus a matrix product so the
    output is already channel-last.
    """

    def __init__(self, in_channels: int, channels: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.weight = nn.Parameter(torch.empty(channels, in_channels, patch, patch, patch))
        self.bias = nn.Parameter(torch.empty(channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(in_channels * patch ** 3)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, Z, Y, X) -> (B, Z/p, Y/p, X/p, C)."""
        b, c, d, h, w = x.shape
        p = self.patch
        x = x.view(b, c, d // p, p, h // p, p, w // p, p).permute(0, 2, 4, 6, 1, 3, 5, 7)
        patches = x.reshape(b, d // p, h // p, w // p, c * p ** 3)
        return F.linear(patches, self.weight.flatten(1), self.bias)


class SwinStage(nn.Module):
    """Blocks alternating plain and half-window-shifted windows, then a patch merging."""

    def __init__(self, channels: int, depth: int, num_heads: int, window: int,
                 drop_paths: list[float], checkpointing: bool) -> None:
        super().__init__()
        win = (window,) * 3
        shift = (window // 2,) * 3
        self.blocks = nn.ModuleList(
            SwinBlock(channels, num_heads, win, shift if i % 2 else (0, 0, 0), drop_paths[i])
            for i in range(depth))
        self.merge = PatchMerging(channels)
        self.checkpointing = checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.merge(x)


class SwinEncoder(nn.Module):
    """Patch embedding, domain-invariance module and Swin stages; returns multi-scale features.

    Args:
        arch: sizes and options; ``arch.dim == "none"`` leaves the DIM out.

    Example:
        >>> enc = SwinEncoder(SwinArchitecture(in_channels=1, num_classes=2, feature_size=12))
        >>> [tuple(h.shape[1:]) for h in enc(torch.zeros(1, 1, 64, 64, 64))][-1]
        (192, 2, 2, 2)
    """

    def __init__(self, arch: SwinArchitecture) -> None:
        super().__init__()
        self.arch = arch
        self.patch_embed = PatchEmbedding(arch.in_channels, arch.feature_size,
                                          arch.patch_embed_stride)
        self.domain_invariance = (DomainInvarianceModule(arch.feature_size, arch.dim_parts)
                                  if arch.dim_parts else None)
        blocks = sum(arch.depths)
        rates = [arch.drop_path_rate * i / max(1, blocks - 1) for i in range(blocks)]
        self.stages = nn.ModuleList()
        for i, (channels, depth, heads) in enumerate(
                zip(arch.stage_channels, arch.depths, arch.num_heads)):
            first = sum(arch.depths[:i])
            self.stages.append(SwinStage(channels, depth, heads, arch.window_size,
                                         rates[first:first + depth], arch.gradient_checkpointing))

    def forward(self, x: torch.Tensor, partner: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Encode ``x`` (and, for co-attention, ``partner``).

        Args:
            x: (B, in_channels, Z, Y, X), every spatial axis a multiple of ``arch.input_divisor``.
            partner: optional tensor of the same shape; sample i of ``partner`` is the co-attention
                partner of sample i of ``x`` (two views of one crop, or a CT and an MR crop of one
                patient). Pairing by position, never across the batch, keeps each pair's result
                independent of what else is in the batch; the paired pass runs both maps through
                the whole encoder in one batch.

        Returns:
            Hidden states at 1/2, 1/4, ..., 1/32 resolution, channel-first and layer-normalised;
            with a partner, the batch axis holds ``x``'s samples followed by ``partner``'s.

        Raises:
            PlanError: wrong rank, channel count or spatial size, or a partner of another shape.
        """
        self._check(x, partner)
        if partner is not None:
            x = torch.cat([x, partner])
        tokens = self.patch_embed(x)
        if self.domain_invariance is not None:
            tokens = self.domain_invariance.forward_stacked(tokens, paired=partner is not None)
        hidden = [_to_decoder(tokens)]
        for stage in self.stages:
            tokens = stage(tokens)
            hidden.append(_to_decoder(tokens))
        return hidden

    def _check(self, x: torch.Tensor, partner: torch.Tensor | None) -> None:
        if x.dim() != 5 or x.shape[1] != self.arch.in_channels:
            raise PlanError(f"Input tensor must be 5D (batch, {self.arch.in_channels} channels, z, "
                            f"y, x), but it has shape {tuple(x.shape)}.")
        self.arch.check_input_size(x.shape[2:])
        if partner is not None and partner.shape != x.shape:
            raise PlanError(f"The co-attention partner must have the input's shape "
                            f"{tuple(x.shape)}, but it has shape {tuple(partner.shape)}.")


def _to_decoder(tokens: torch.Tensor) -> torch.Tensor:
    """Parameter-free layer norm (puts every scale on one footing) and a channel-first view."""
    return F.layer_norm(tokens, tokens.shape[-1:]).permute(0, 4, 1, 2, 3)
