"""Segmentation network and pre-training model: shapes, gradients, deep supervision."""

from __future__ import annotations

import pytest
import torch

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.dim import DomainInvarianceModule
from swinfuse_auto.networks.factory import build_pretraining_model, build_segmentation_network

SHAPE = (32, 64, 32)
LIGHT = {"feature_size": 4, "num_heads": (1, 2, 2, 4)}  # attention cost grows with heads, not F


def _wake_dim(model: torch.nn.Module) -> None:
    """Move the DIM's zero gates off zero, so gradients reach every DIM parameter."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, DomainInvarianceModule):
                for name, p in module.named_parameters():
                    if name.endswith("gate") or name.startswith("proj"):
                        p.fill_(0.1)


@pytest.mark.parametrize("build", [build_segmentation_network, build_pretraining_model])
def test_every_network_trains_all_parameters(build: object) -> None:
    torch.manual_seed(0)
    model = build(SwinArchitecture(2, 3, **LIGHT))  # type: ignore[operator]
    _wake_dim(model)
    out = model(torch.randn(2, 2, *SHAPE))  # batch norm of the projection: 2 rows
    tensors = [out] if isinstance(out, torch.Tensor) else list(vars(out).values())
    sum(t.float().square().mean() for t in tensors).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.any()]
    assert not no_grad and not zero, (no_grad, zero)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_segmentation_logits_at_input_resolution_with_deep_supervision() -> None:
    torch.manual_seed(0)
    model = build_segmentation_network(SwinArchitecture(1, 4, **LIGHT), deep_supervision=True)
    with torch.no_grad():
        outs = model(torch.randn(2, 1, *SHAPE))
        assert [tuple(o.shape) for o in outs] == [
            (2, 4) + tuple(s // f for s in SHAPE) for f in (1, 2, 4, 8)]
        model.deep_supervision = False
        assert model(torch.randn(1, 1, *SHAPE)).shape == (1, 4) + SHAPE
    plain = build_segmentation_network(SwinArchitecture(1, 4, **LIGHT))
    with pytest.raises(ConfigError, match="without deep-supervision heads"):
        plain.deep_supervision = True


def test_pretraining_outputs() -> None:
    torch.manual_seed(0)
    model = build_pretraining_model(SwinArchitecture(1, 2, **LIGHT))
    with torch.no_grad():
        out = model(torch.randn(2, 1, *SHAPE), torch.randn(2, 1, *SHAPE))
    assert out.rotation_logits.shape == (4, 4)
    assert out.contrastive.shape == (4, 512)
    assert out.reconstruction.shape == (4, 1) + SHAPE
    assert out.embedding.shape == (4, 4 * 16)


def test_contrastive_projections_do_not_share_one_direction() -> None:
    # Pooled bottlenecks of different crops share a large common component; through a plain
    # linear head every pair had cosine similarity > 0.97 and NT-Xent saw no difference.
    torch.manual_seed(0)
    model = build_pretraining_model(SwinArchitecture(1, 2, **LIGHT)).train()
    base = torch.randn(1, 1, *SHAPE)
    crops = base + 0.3 * torch.randn(4, 1, *SHAPE)  # similar crops, as two views of CT are
    with torch.no_grad():
        out = model(crops[:2], crops[2:])
    unit = torch.nn.functional.normalize(out.contrastive, dim=1)
    pooled = torch.nn.functional.normalize(out.embedding, dim=1)
    assert (pooled @ pooled.T).min() > 0.9  # the common component is there ...
    assert (unit @ unit.T).min() < 0.5  # ... and the projection removes it

