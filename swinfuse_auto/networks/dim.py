"""The domain-invariance module (DIM): makes the stem's tokens less CT- or MR-specific.

It sits between the patch embedding and the first Swin stage and acts on the channel-last token
map, in three residual steps, each of which starts as the identity (zero gates / zero output
projection), so a pre-trained or freshly built encoder is unchanged until training moves them:

1. **Style normalisation.** A modality's "style" (overall intensity level and contrast of each
   feature) lives mostly in per-image channel statistics, as in instance-norm / MixStyle domain
   generalisation. The token map is mixed with its per-image, per-channel standardised version
   through a learnable per-channel gate, so the network chooses which channels to make
   style-free. Done first so that saliency and attention see style-reduced features.
2. **Saliency gating.** A small per-token MLP scores each token; the score rescales the token by
   ``1 + g * tanh(score)`` with a per-channel gate ``g``, which highlights salient
   regions and damps background, the DIM's role in the SwinFUSE paper.
3. **Windowed co-attention.** With two token maps (two views of one crop, or a CT and an MR crop)
   each map queries the other inside corresponding windows (symmetric, shared weights), which
   pulls the two representations of the same anatomy together; with one map it is windowed
   self-attention. Single head, no position bias: it aligns content (the residual already
   carries the co-located token), and the cheap form keeps the module within its budget of
   +15% step time. Windows (8 tokens, i.e. 16 voxels) divide every Swin-compatible map exactly.

Attention never crosses the batch axis (unlike the authors' release), so a batch of one, any
input size and any feature size work, and a sample's output never depends on its batch-mates.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.networks.windows import (WindowLayout, to_map_order, to_window_order,
                                            window_layout)

DIM_PARTS = frozenset({"saliency", "style", "attention"})


class DomainInvarianceModule(nn.Module):
    """Style normalisation, saliency gating and windowed co-/self-attention on a token map.

    Args:
        channels: token channels (any positive number).
        parts: which of "style", "saliency", "attention" to use (ablations switch parts off).
        window_size: co-attention window edge in tokens; shrinks along shorter axes.
        num_heads: attention heads; must divide ``channels``.
        eps: variance floor of the style normalisation.

    Raises:
        ConfigError: an unknown part, or heads that do not divide the channels.

    Example:
        >>> dim = DomainInvarianceModule(12)
        >>> x = torch.randn(1, 16, 16, 16, 12)
        >>> torch.equal(dim(x), x)  # identity at initialisation
        True
    """

    def __init__(self, channels: int, parts: Iterable[str] = DIM_PARTS, window_size: int = 8,
                 num_heads: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.parts = frozenset(parts)
        if self.parts - DIM_PARTS or channels % num_heads:
            raise ConfigError(f"DomainInvarianceModule: parts must be a subset of "
                              f"{sorted(DIM_PARTS)} (found {sorted(self.parts)}) and num_heads "
                              f"({num_heads}) must divide channels ({channels}).")
        self.window = (window_size,) * 3
        self.num_heads, self.eps = num_heads, eps
        if "style" in self.parts:
            self.style_gate = nn.Parameter(torch.zeros(channels))
        if "saliency" in self.parts:
            hidden = max(4, channels // 2)
            self.saliency = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, hidden),
                                          nn.GELU(), nn.Linear(hidden, 1))
            self.saliency_gate = nn.Parameter(torch.zeros(channels))
        if "attention" in self.parts:
            self.attn_norm = nn.LayerNorm(channels)
            self.qkv = nn.Linear(channels, 3 * channels)
            self.proj = nn.Linear(channels, channels)
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, partner: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Apply the module to one token map, or symmetrically to a pair.

        Args:
            x: (B, z, y, x, C) channel-last token map.
            partner: optional map of the same shape; sample i pairs with sample i of ``x``.

        Returns:
            The new ``x``, or the new ``(x, partner)`` when a partner is given.

        Raises:
            ConfigError: ``x`` is not 5D or the partner's shape differs.
        """
        if x.dim() != 5 or (partner is not None and partner.shape != x.shape):
            raise ConfigError(f"DomainInvarianceModule expects (B, z, y, x, C) token maps of one "
                              f"shape; found {tuple(x.shape)} and "
                              f"{None if partner is None else tuple(partner.shape)}.")
        if partner is None:
            return self.forward_stacked(x, paired=False)
        out = self.forward_stacked(torch.cat([x, partner]), paired=True)
        return out[:x.shape[0]], out[x.shape[0]:]

    def forward_stacked(self, tokens: torch.Tensor, paired: bool) -> torch.Tensor:
        """Apply to ``(B, z, y, x, C)``; with ``paired``, sample i pairs with sample i + B/2."""
        if "style" in self.parts:
            tokens = self._normalise_style(tokens)
        if "saliency" in self.parts:
            score = torch.tanh(self.saliency(tokens))
            tokens = tokens + tokens * score * self.saliency_gate
        if "attention" in self.parts:
            tokens = tokens + self._co_attend(tokens, paired)
        return tokens

    def _normalise_style(self, tokens: torch.Tensor) -> torch.Tensor:
        """``x + g * (standardise(x) - x)`` folded into one per-image, per-channel affine map."""
        var, mean = torch.var_mean(tokens, dim=(1, 2, 3), keepdim=True, correction=0)
        rstd = torch.rsqrt(var + self.eps)
        scale = 1.0 + self.style_gate * (rstd - 1.0)
        return torch.addcmul(-self.style_gate * mean * rstd, tokens, scale)

    def _co_attend(self, tokens: torch.Tensor, paired: bool) -> torch.Tensor:
        batch, depth, height, width, channels = tokens.shape
        layout = window_layout((depth, height, width), self.window, (0, 0, 0), batch,
                               tokens.device)
        flat = to_window_order(self.attn_norm(tokens).view(-1, channels), layout)
        qkv = self.qkv(flat)
        outs = [self._attend(qkv, layout, index, batch, paired)
                for index in range(len(layout.groups))]
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return to_map_order(self.proj(out), layout).view_as(tokens)

    def _attend(self, qkv: torch.Tensor, layout: WindowLayout, index: int, batch: int,
                paired: bool) -> torch.Tensor:
        group = layout.groups[index]
        n, windows = group.tokens, batch * group.count
        rows = qkv[group.start:group.start + windows * n]
        channels = rows.shape[1] // 3
        kv = rows[:, channels:]
        if paired:  # rows are image-major: rolling by half the rows swaps the two maps' keys
            kv = torch.roll(kv, shifts=rows.shape[0] // 2, dims=0)
        heads = self.num_heads
        q = rows[:, :channels].view(windows, n, heads, -1).transpose(1, 2)
        k, v = kv.reshape(windows, n, 2, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(windows * n, channels)
