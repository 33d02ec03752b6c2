"""Swin encoder: multi-scale output shapes, input checks and pairing with a partner."""

from __future__ import annotations

import pytest
import torch

from swinfuse_auto.errors import PlanError
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.swin import SwinEncoder

# Two stages, one head: 16^3 inputs still shift windows (8^3 tokens > window 7) at little cost.
LIGHT = {"feature_size": 4, "depths": (2, 2), "num_heads": (1, 1)}
LIGHT_SHAPE = (16, 16, 16)


@pytest.mark.parametrize("feature_size, heads, shape", [(12, (3, 6, 12, 24), (32, 64, 32)),
                                                        (5, (1, 1, 1, 1), (64, 32, 64)),
                                                        (4, (1, 2, 2, 4), (32, 32, 96))])
def test_hidden_state_shapes(feature_size: int, heads: tuple[int, ...],
                             shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    encoder = SwinEncoder(SwinArchitecture(2, 3, feature_size=feature_size, num_heads=heads))
    with torch.no_grad():
        hidden = encoder(torch.randn(1, 2, *shape))
    assert len(hidden) == 5
    for level, h in enumerate(hidden):
        scale = 2 ** (level + 1)
        assert h.shape == (1, feature_size * 2 ** level) + tuple(s // scale for s in shape)
        assert torch.isfinite(h).all()


def test_partner_doubles_the_batch_and_pairs_by_position() -> None:
    torch.manual_seed(0)
    encoder = SwinEncoder(SwinArchitecture(1, 2, **LIGHT)).eval()
    x, partner = torch.randn(2, 1, *LIGHT_SHAPE), torch.randn(2, 1, *LIGHT_SHAPE)
    with torch.no_grad():
        paired = encoder(x, partner)[-1]
        first_pair = encoder(x[:1], partner[:1])[-1]
    assert paired.shape[0] == 4
    torch.testing.assert_close(paired[[0, 2]], first_pair, rtol=1e-4, atol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = SwinEncoder(SwinArchitecture(1, 2, dim="none", **LIGHT))
    ckpt = SwinEncoder(SwinArchitecture(1, 2, dim="none", gradient_checkpointing=True, **LIGHT))
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, *LIGHT_SHAPE)
    for model in (plain, ckpt):
        sum(h.square().mean() for h in model(x)).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("shape, fragment", [
    ((1, 1, 32, 64, 48), "which axis x is not"),
    ((1, 1, 32, 32, 32), "single voxel"),
    ((1, 2, 32, 64, 32), "5D (batch, 1 channels"),
    ((1, 32, 64, 32), "5D (batch, 1 channels"),
])
def test_bad_inputs_are_rejected_clearly(shape: tuple[int, ...], fragment: str) -> None:
    encoder = SwinEncoder(SwinArchitecture(1, 2, feature_size=3))
    with pytest.raises(PlanError) as info:
        encoder(torch.zeros(shape))
    assert fragment in str(info.value)


def test_partner_of_another_shape_is_rejected() -> None:
    encoder = SwinEncoder(SwinArchitecture(1, 2, feature_size=3))
    with pytest.raises(PlanError, match="partner must have the input's shape"):
        encoder(torch.zeros(1, 1, 32, 64, 32), torch.zeros(2, 1, 32, 64, 32))
