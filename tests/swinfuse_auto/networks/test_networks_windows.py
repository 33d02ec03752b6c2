"""Window partitions: equivalence with Swin's roll-and-mask scheme, window shrinking, bias index."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from swinfuse_auto.networks.windows import (effective_window, relative_position_index,
                                            to_window_order, window_layout)


def _window_ids(shape: tuple[int, int, int], window: int, shift: int) -> torch.Tensor:
    """Window id of every token of the map, from our layout."""
    layout = window_layout(shape, (window,) * 3, (shift,) * 3, 1, torch.device("cpu"))
    ids = torch.empty(math.prod(shape), dtype=torch.long)
    next_id = 0
    for group in layout.groups:
        for w in range(group.count):
            start = group.start + w * group.tokens
            ids[layout.permutation[start:start + group.tokens]] = next_id
            next_id += 1
    return ids


def _swin_reference_allowed(shape: tuple[int, int, int], window: int, shift: int
                            ) -> torch.Tensor:
    """(L, L) pairs Swin lets attend: pad, roll by -shift, cut windows, mask by region and pad."""
    win, sh = effective_window(shape, (window,) * 3, (shift,) * 3)
    padded = [math.ceil(s / w) * w for s, w in zip(shape, win)]
    ids = torch.full(padded, -1, dtype=torch.long)
    ids[:shape[0], :shape[1], :shape[2]] = torch.arange(math.prod(shape)).view(shape)
    if any(sh):
        ids = torch.roll(ids, shifts=[-s for s in sh], dims=(0, 1, 2))
    region = torch.zeros(padded, dtype=torch.long)
    slices = [[slice(0, p - w), slice(p - w, p - s), slice(p - s, p)] if s else [slice(0, p)]
              for p, w, s in zip(padded, win, sh)]
    for label, (a, b, c) in enumerate(itertools.product(*slices)):
        region[a, b, c] = label
    allowed = torch.zeros(math.prod(shape), math.prod(shape), dtype=torch.bool)
    for corner in itertools.product(*[range(0, p, w) for p, w in zip(padded, win)]):
        box = tuple(slice(c, c + w) for c, w in zip(corner, win))
        tok, reg = ids[box].reshape(-1), region[box].reshape(-1)
        ok = (tok[:, None] >= 0) & (tok[None] >= 0) & (reg[:, None] == reg[None])
        i, j = torch.nonzero(ok, as_tuple=True)
        allowed[tok[i], tok[j]] = True
    return allowed


@pytest.mark.parametrize("shape, shift", [((8, 8, 8), 3), ((14, 14, 14), 3), ((16, 9, 5), 3),
                                          ((8, 8, 8), 0), ((10, 4, 12), 0)])
def test_partition_allows_exactly_the_pairs_of_swins_shift_mask(
        shape: tuple[int, int, int], shift: int) -> None:
    ids = _window_ids(shape, 7, shift)
    ours = ids[:, None] == ids[None]
    assert torch.equal(ours, _swin_reference_allowed(shape, 7, shift))


def test_shift_never_pairs_tokens_across_the_wrapped_border() -> None:
    shape = (16, 16, 16)
    ids = _window_ids(shape, 7, 3)
    coords = torch.stack(torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij"))
    coords = coords.reshape(3, -1)
    same = ids[:, None] == ids[None]
    distance = (coords[:, :, None] - coords[:, None, :]).abs().amax(dim=0)
    assert distance[same].max() < 7  # a pair across the wrapped border would be >= 9 apart
    assert same.sum(dim=1).min() == 3 * 3 * 3  # the wrapped 3^3 corner box stays on its own


def test_window_shrinks_and_stops_shifting_on_short_axes() -> None:
    assert effective_window((4, 16, 7), (7, 7, 7), (3, 3, 3)) == ((4, 7, 7), (0, 3, 0))
    layout = window_layout((4, 4, 4), (7, 7, 7), (3, 3, 3), 2, torch.device("cpu"))
    assert [(g.shape, g.count) for g in layout.groups] == [((4, 4, 4), 1)]
    assert torch.equal(torch.sort(layout.permutation).values, torch.arange(128))


def test_layout_is_a_permutation_with_its_inverse() -> None:
    layout = window_layout((10, 9, 16), (7, 7, 7), (3, 3, 3), 3, torch.device("cpu"))
    n = 3 * 10 * 9 * 16
    assert torch.equal(torch.sort(layout.permutation).values, torch.arange(n))
    assert torch.equal(layout.permutation[layout.inverse], torch.arange(n))
    assert all(g.tokens <= 343 for g in layout.groups)


def test_small_windows_use_the_bias_of_their_true_offsets() -> None:
    full = relative_position_index((7, 7, 7), (7, 7, 7)).view(7, 7, 7, 7, 7, 7)
    small = relative_position_index((2, 3, 1), (7, 7, 7)).view(2, 3, 1, 2, 3, 1)
    for a, b in itertools.product(itertools.product(range(2), range(3), range(1)), repeat=2):
        assert small[a + b] == full[a + b]


def test_a_layout_first_built_while_predicting_still_trains() -> None:
    # pseudo-labelling, the demo's timing after a prediction or a calibration pass build layouts
    # under inference_mode; the cached copy is shared with training steps that follow
    shape = (4, 8, 12)  # a shape no other test uses, so this call builds the cached layout
    with torch.inference_mode():
        layout = window_layout(shape, (2, 4, 4), (1, 2, 2), 1, torch.device("cpu"))
    x = torch.randn(math.prod(shape), 3, requires_grad=True)
    to_window_order(x, layout).square().sum().backward()
    assert x.grad is not None and not layout.inverse.is_inference()
