from __future__ import annotations

import math

import pytest
import torch

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.training.ssl_losses import (
    PretrainingLossWeights,
    combine_losses,
    density_matching_loss,
    inpainting_loss,
    nt_xent_loss,
    rotation_loss,
)

LN2 = math.log(2.0)


def _clouds(n: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)


def _ids(n_ct: int, n_mr: int) -> torch.Tensor:
    return torch.tensor([0] * n_ct + [1] * n_mr)


def test_inpainting_is_whole_crop_l1_or_mask_weighted() -> None:
    target = torch.zeros(2, 1, 4, 4, 4)
    recon = torch.ones_like(target)
    assert inpainting_loss(recon, target).item() == pytest.approx(1.0)
    mask = torch.zeros(2, 1, 4, 4, 4, dtype=torch.bool)
    mask[:, :, :2] = True
    recon = torch.where(mask, 2.0, 1.0)  # error 2 inside the holes, 1 outside
    expected = (2.0 * 64 + 0.1 * 64) / (64 + 0.1 * 64)
    assert inpainting_loss(recon, target, mask).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="same shape"):
        inpainting_loss(recon, target[:1])


def test_rotation_loss_is_cross_entropy() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    value = rotation_loss(logits, torch.tensor([0, 3]))
    expected = 0.5 * (-math.log(math.exp(5) / (math.exp(5) + 3)) + math.log(4))
    assert value.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        rotation_loss(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_nt_xent_matches_a_hand_computed_value_for_two_samples() -> None:
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    unit = [torch.nn.functional.normalize(v, dim=0) for v in [*z1, *z2]]
    positive = {0: 2, 1: 3, 2: 0, 3: 1}
    total = 0.0
    for i in range(4):
        sims = {k: float(unit[i] @ unit[k]) / 0.5 for k in range(4) if k != i}
        total += -sims[positive[i]] + math.log(sum(math.exp(s) for s in sims.values()))
    assert nt_xent_loss(z1, z2).item() == pytest.approx(total / 4, rel=1e-5)


def test_nt_xent_is_lower_for_aligned_pairs_than_random_pairs() -> None:
    z, other = _clouds(8, 32)
    aligned = nt_xent_loss(z, z + 0.05 * other)
    random_pairs = nt_xent_loss(z, other)
    assert aligned < random_pairs


def test_nt_xent_with_one_sample_is_zero_with_finite_gradients() -> None:
    z1, z2 = (t.requires_grad_() for t in _clouds(1, 8))
    loss = nt_xent_loss(z1, z2)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    with pytest.raises(ConfigError, match="temperature"):
        nt_xent_loss(z1, z2, temperature=0.0)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_density_matching_is_zero_for_identical_sample_sets(n: int) -> None:
    ct, _ = _clouds(n)
    mr = ct.flip(0)  # same set, other order
    assert abs(density_matching_loss(torch.cat([ct, mr]), _ids(n, n)).item()) < 1e-6


@pytest.mark.parametrize("n", [2, 4, 8])
def test_density_matching_grows_with_separation_and_is_bounded(n: int) -> None:
    ct, mr = _clouds(n)
    values = [density_matching_loss(torch.cat([ct, mr + shift]), _ids(n, n)).item()
              for shift in (0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(values, values[1:])), values
    far = density_matching_loss(torch.cat([ct, mr + 1e4]), _ids(n, n)).item()
    assert values[-1] < far <= LN2 + 1e-6
    assert far == pytest.approx(LN2, abs=1e-4)


def test_density_matching_gradient_reaches_both_modalities() -> None:
    ct, mr = _clouds(3)
    embeddings = torch.cat([ct, mr + 1.0]).requires_grad_()
    density_matching_loss(embeddings, _ids(3, 3)).backward()
    assert embeddings.grad[:3].abs().sum() > 0 and embeddings.grad[3:].abs().sum() > 0
    assert torch.isfinite(embeddings.grad).all()


def test_density_matching_pulls_the_modalities_together() -> None:
    ct, mr = _clouds(4)
    embeddings = torch.cat([ct, mr + 2.0]).requires_grad_()
    before = density_matching_loss(embeddings, _ids(4, 4))
    before.backward()
    with torch.no_grad():
        after = density_matching_loss(embeddings - 2.0 * embeddings.grad, _ids(4, 4))
    assert after < before


def test_density_matching_is_zero_for_a_single_modality_batch() -> None:
    embeddings = torch.randn(4, 8, requires_grad=True)
    loss = density_matching_loss(embeddings, torch.zeros(4, dtype=torch.long))
    assert loss.item() == 0.0
    (loss + embeddings.sum()).backward()
    assert torch.equal(embeddings.grad, torch.ones(4, 8))


def test_density_matching_slices_fixed_bandwidth_and_errors() -> None:
    ct, mr = _clouds(4)
    embeddings, ids = torch.cat([ct, mr + 1.0]), _ids(4, 4)
    marginal = density_matching_loss(embeddings, ids)
    assert density_matching_loss(embeddings, ids, directions=torch.eye(16)) == marginal
    sliced = density_matching_loss(embeddings, ids, directions=torch.randn(16, 3), bandwidth=0.5)
    assert 0 < sliced.item() <= LN2
    with pytest.raises(ValueError, match="pool"):
        density_matching_loss(torch.zeros(2, 3, 4), ids[:2])
    with pytest.raises(ConfigError, match="bandwidth"):
        density_matching_loss(embeddings, ids, bandwidth=-1.0)


def test_combine_losses_weights_each_part_and_skips_absent_ones() -> None:
    parts = {"inpainting": torch.tensor(2.0), "rotation": torch.tensor(1.0),
             "density_matching": torch.tensor(0.5)}
    total = combine_losses(parts, PretrainingLossWeights(rotation=3.0))
    assert total.item() == pytest.approx(2.0 + 3.0 + 0.05)
    with pytest.raises(ConfigError, match="contrastive"):
        combine_losses({"contrast": torch.tensor(1.0)}, PretrainingLossWeights())
    with pytest.raises(ConfigError, match="density_matching"):
        PretrainingLossWeights(density_matching=-0.1)
