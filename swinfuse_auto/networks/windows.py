"""Window partitions for (shifted-)window attention, computed once per feature-map shape.

Swin pads a map to a multiple of the window, rolls it by the shift, cuts windows and masks the
pairs that the roll brought together across the wrapped border. With the padded tokens masked
too, the pairs that survive are exactly the pairs inside the boxes of a partition of the
*unpadded* map whose boundaries along each axis lie at ``shift + k * window`` (plus 0 and the map
size). We attend inside those boxes directly: no padding, no roll, no mask, and no work spent on
padded or masked pairs (at a 64^3 crop MONAI's padded windows do 1.5x, 3x and 7.5x the necessary
work in stages 1-3). Boxes of one shape are batched together, so a block runs at most 27 dense
attention calls, one per box shape.

Along an axis no longer than the window the window shrinks to the axis and does not shift, as in
Swin UNETR.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import torch

Shape3D = tuple[int, int, int]


@dataclass(frozen=True)
class WindowGroup:
    """All windows of one box shape, stored contiguously in the permuted token order.

    Attributes:
        shape: window extent per axis (z, y, x).
        count: windows of this shape per image.
        start: offset of the group's first token in the permuted order (batch included).
        relative_index: (n, n) index into a relative-position-bias table, n = prod(shape).
    """

    shape: Shape3D
    count: int
    start: int
    relative_index: torch.Tensor

    @property
    def tokens(self) -> int:
        """Tokens per window."""
        return self.shape[0] * self.shape[1] * self.shape[2]


@dataclass(frozen=True)
class WindowLayout:
    """How to gather a (batch * tokens, C) map into windows and scatter the result back.

    Attributes:
        permutation: (B*L,) flat token index for every slot of the window order: group-major,
            then image, then window, then token in row-major order inside the window.
        inverse: (B*L,) inverse permutation, to put window outputs back into map order.
        groups: one entry per box shape.
    """

    permutation: torch.Tensor
    inverse: torch.Tensor
    groups: tuple[WindowGroup, ...]


class _PermuteRows(torch.autograd.Function):
    """Row permutation whose backward is the inverse gather.

    ``index_select``'s generic backward zero-fills a buffer and scatter-adds into it, which costs
    about as much as the attention it serves; a bijection needs neither.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor
                ) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (inverse,) = ctx.saved_tensors
        return grad.index_select(0, inverse), None, None


def to_window_order(x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """(B*L, C) rows in map order -> the layout's window order."""
    return _PermuteRows.apply(x, layout.permutation, layout.inverse)


def to_map_order(x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """(B*L, C) rows in the layout's window order -> map order."""
    return _PermuteRows.apply(x, layout.inverse, layout.permutation)


def effective_window(map_shape: Shape3D, window: Shape3D, shift: Shape3D
                     ) -> tuple[Shape3D, Shape3D]:
    """Window and shift in use: an axis no longer than the window takes it whole, unshifted."""
    win = tuple(s if s <= w else w for s, w in zip(map_shape, window))
    sh = tuple(0 if s <= w else h for s, w, h in zip(map_shape, window, shift))
    return win, sh  # type: ignore[return-value]


def axis_intervals(size: int, window: int, shift: int) -> list[tuple[int, int]]:
    """Half-open token intervals of the (shifted) window partition along one axis."""
    if size <= window:
        return [(0, size)]
    cuts = sorted({0, size} | {b for b in range(shift, size, window) if 0 < b < size})
    return list(zip(cuts[:-1], cuts[1:]))


def relative_position_index(shape: Shape3D, table_window: Shape3D) -> torch.Tensor:
    """(n, n) index of each token pair's offset in a ``prod(2 * table_window - 1)`` bias table.

    Windows smaller than the table's window index the matching sub-block of offsets, so a shrunk
    or border window uses the same learned bias as a full window for the same offset.
    """
    coords = torch.stack(torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij"))
    coords = coords.flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    spans = [2 * w - 1 for w in table_window]
    rel = rel + torch.tensor([w - 1 for w in table_window])[:, None, None]
    return (rel[0] * spans[1] + rel[1]) * spans[2] + rel[2]


def _box_tokens(starts: list[list[int]], extents: Shape3D, map_shape: Shape3D) -> torch.Tensor:
    """Flat map index of every token of every box with the given start corners, window-major."""
    _, height, width = map_shape
    z, y, x = (torch.tensor(s)[:, None] + torch.arange(e)[None] for s, e in zip(starts, extents))
    flat = ((z[:, None, None, :, None, None] * height + y[None, :, None, None, :, None]) * width
            + x[None, None, :, None, None, :])
    return flat.reshape(-1)


@functools.lru_cache(maxsize=128)
def _build_layout(map_shape: Shape3D, window: Shape3D, shift: Shape3D, batch: int
                  ) -> WindowLayout:
    win, sh = effective_window(map_shape, window, shift)
    per_axis = [axis_intervals(s, w, h) for s, w, h in zip(map_shape, win, sh)]
    lengths = [sorted({b - a for a, b in iv}, reverse=True) for iv in per_axis]
    tokens = map_shape[0] * map_shape[1] * map_shape[2]
    pieces, groups, start = [], [], 0
    for extents in itertools.product(*lengths):
        starts = [[a for a, b in iv if b - a == e] for iv, e in zip(per_axis, extents)]
        flat = _box_tokens(starts, extents, map_shape)
        count = len(starts[0]) * len(starts[1]) * len(starts[2])
        offsets = torch.arange(batch)[:, None] * tokens
        pieces.append((offsets + flat[None]).reshape(-1))
        groups.append(WindowGroup(extents, count, start, relative_position_index(extents, window)))
        start += batch * flat.numel()
    permutation = torch.cat(pieces)
    inverse = torch.empty_like(permutation)
    inverse[permutation] = torch.arange(permutation.numel())
    return WindowLayout(permutation, inverse, tuple(groups))


def window_layout(map_shape: Shape3D, window: Shape3D, shift: Shape3D, batch: int,
                  device: torch.device) -> WindowLayout:
    """Cached :class:`WindowLayout` for a map shape, on ``device``.

    Layouts hold only integer indices, so one copy per (shape, window, shift, batch, device) is
    shared by every block and every model; it is never part of a state dict. They are built
    outside inference mode: a layout first built while predicting (pseudo-labels, the demo's
    prediction, a calibration pass) would otherwise be an inference tensor, which a later
    training step in the same process cannot save for backward.
    """
    with torch.inference_mode(False):
        return _layout_on(tuple(map_shape), tuple(window), tuple(shift), batch, str(device))


@functools.lru_cache(maxsize=256)
def _layout_on(map_shape: Shape3D, window: Shape3D, shift: Shape3D, batch: int, device: str
               ) -> WindowLayout:
    cpu = _build_layout(map_shape, window, shift, batch)
    return WindowLayout(
        cpu.permutation.to(device), cpu.inverse.to(device),
        tuple(WindowGroup(g.shape, g.count, g.start, g.relative_index.to(device))
              for g in cpu.groups))
