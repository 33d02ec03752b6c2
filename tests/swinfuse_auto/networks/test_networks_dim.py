"""The domain-invariance module: identity at initialisation, self- and co-attention, budget."""

from __future__ import annotations

import pytest
import torch

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.dim import DomainInvarianceModule
from swinfuse_auto.networks.unetr import SwinDIMUNETR


def _perturbed(channels: int, seed: int = 0) -> DomainInvarianceModule:
    """A module whose gates and output projection are no longer zero (as after training)."""
    torch.manual_seed(seed)
    dim = DomainInvarianceModule(channels)
    with torch.no_grad():
        for name, p in dim.named_parameters():
            if name.endswith("gate") or name.startswith("proj"):
                p.normal_(0.0, 0.5)
    return dim


@pytest.mark.parametrize("shape", [(1, 16, 16, 16, 12), (2, 5, 9, 3, 7), (1, 1, 1, 1, 1)])
def test_identity_at_initialisation(shape: tuple[int, ...]) -> None:
    dim = DomainInvarianceModule(shape[-1])
    x = torch.randn(shape)
    assert torch.equal(dim(x), x)
    partner = torch.randn(shape)
    out_x, out_p = dim(x, partner)
    assert torch.equal(out_x, x) and torch.equal(out_p, partner)


def test_self_attention_treats_each_sample_on_its_own() -> None:
    dim = _perturbed(7)
    x = torch.randn(3, 9, 10, 5, 7)
    alone = dim(x[1:2])
    assert not torch.allclose(alone, x[1:2])
    torch.testing.assert_close(dim(x)[1:2], alone, rtol=1e-5, atol=1e-5)


def test_co_attention_is_symmetric_and_pairs_by_position() -> None:
    dim = _perturbed(12)
    x, partner = torch.randn(2, 8, 8, 16, 12), torch.randn(2, 8, 8, 16, 12)
    out_x, out_p = dim(x, partner)
    swapped_p, swapped_x = dim(partner, x)
    torch.testing.assert_close(out_x, swapped_x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_p, swapped_p, rtol=1e-5, atol=1e-5)
    single_x, _ = dim(x[:1], partner[:1])  # pair 0 does not see pair 1
    torch.testing.assert_close(out_x[:1], single_x, rtol=1e-5, atol=1e-5)
    other_x, _ = dim(x, torch.randn_like(partner))  # the partner drives the result
    assert not torch.allclose(other_x, out_x)
    assert not torch.allclose(out_x, dim(x))  # co-attention differs from self-attention


def test_parts_can_be_switched_off() -> None:
    dim = DomainInvarianceModule(6, parts=("style",))
    assert [n for n, _ in dim.named_parameters()] == ["style_gate"]
    with pytest.raises(ConfigError, match="must be a subset"):
        DomainInvarianceModule(6, parts=("colour",))
    with pytest.raises(ConfigError, match="must divide channels"):
        DomainInvarianceModule(7, num_heads=2)


def test_mismatched_partner_is_rejected() -> None:
    dim = DomainInvarianceModule(4)
    with pytest.raises(ConfigError, match="one shape"):
        dim(torch.zeros(1, 4, 4, 4, 4), torch.zeros(2, 4, 4, 4, 4))


def test_parameter_overhead_is_within_ten_percent_at_feature_48() -> None:
    with torch.device("meta"):
        counts = {variant: sum(p.numel() for p in SwinDIMUNETR(
            SwinArchitecture(1, 14, feature_size=48, dim=variant)).parameters())
            for variant in ("none", "swin_dim")}
    assert counts["none"] == 62_187_296  # MONAI SwinUNETR(feature_size=48, out_channels=14)
    assert counts["swin_dim"] / counts["none"] <= 1.10
