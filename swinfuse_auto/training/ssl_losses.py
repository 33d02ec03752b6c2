"""Self-supervised pre-training losses: Tang et al.'s three tasks plus the SwinFUSE density term.

Each loss is a pure function of tensors; its part of the total is named like its field in
:class:`PretrainingLossWeights`, so a trainer can log every part and sum them with
:func:`combine_losses`. Losses are computed in float32 whatever the autocast dtype: NT-Xent's
log-sum-exp and the KDE's exponentials are the first things bf16 breaks.

Density-matching estimator (sliced / marginal KDE Jensen-Shannon divergence). A KDE in the full
D-dimensional embedding space is useless with 2-8 samples per modality: cross-sample kernels
vanish like exp(-D), so any two sets score ln 2 with no gradient. So the samples are reduced to K
one-dimensional slices, the D coordinates themselves (per-dimension marginals, the default) or
``embeddings @ directions`` (sliced JSD; fresh random unit directions each step also see the joint
structure). For slice k, with CT values a_i and MR values b_j:

* bandwidth h_k = max(1.06 * s_k * n^(-1/5), min_bandwidth) (Scott's normal-reference rule), where
  s_k is the *pooled within-modality* standard deviation
  sqrt((sum (a_i - mean a)^2 + sum (b_j - mean b)^2) / (n_a + n_b - 2)) and n = min(n_a, n_b).
  The within-modality spread, unlike the spread of the union, does not grow with the distance
  between the modalities, so the divergence keeps growing with their separation instead of
  saturating. With one sample per modality the union's standard deviation is used. h is
  detached, like the grid below, so gradients only move the embeddings;
* both densities are evaluated on one grid of ``num_points`` points spanning the union of the
  samples +- 3 h_k: p(g) ~ sum_i exp(-(g - a_i)^2 / 2h^2), q likewise from b, each normalised to
  sum 1 over the grid;
* JSD_k = 1/2 sum_g p log(p/m) + 1/2 sum_g q log(q/m), with m = (p + q)/2; the loss is the mean
  over slices.

As the divergence of two discrete distributions the value lies in [0, ln 2]; it is exactly 0 when
the two sample sets are identical (p and q are then the same numbers and m = p); it grows towards
ln 2 as the clouds separate; it is smooth in every sample. Limitation: marginals cannot separate
clouds that differ only in their correlations; ``directions`` addresses that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from swinfuse_auto.dataset.modality import MODALITY_INDEX, Modality
from swinfuse_auto.errors import ConfigError

#: The two modalities the density-matching term compares, and their codes in ``modality_ids``.
DENSITY_MODALITIES: tuple[str, str] = (Modality.CT.value, Modality.MR.value)
DENSITY_GROUPS: tuple[int, int] = (MODALITY_INDEX[Modality.CT], MODALITY_INDEX[Modality.MR])

_SCOTT_FACTOR = 1.06  # normal-reference constant of the 1D Scott / Silverman rule
_GRID_MARGIN = 3.0  # the KDE grid extends this many bandwidths beyond the samples
_TINY_DENSITY = 1e-30  # keeps log() finite where both KDEs underflow; identical for p and q


def inpainting_loss(reconstruction: Tensor, target: Tensor, mask: Tensor | None = None,
                    unmasked_weight: float = 0.1) -> Tensor:
    """L1 reconstruction loss of the inpainting task.

    Without ``mask`` this is Tang et al.'s loss: the mean absolute error over the whole crop. With
    a corruption ``mask`` (True where the input was replaced by noise or by a swapped patch),
    corrupted voxels weigh 1 and the others ``unmasked_weight``, normalised by the total weight so
    the value stays on the scale of a mean L1. Why: 60-70% of a crop is uncorrupted, so whole-crop
    L1 mostly rewards copying the visible intensities; weighting the corrupted voxels makes the
    loss about what the encoder has to infer (as MAE does), while the small weight elsewhere keeps
    the output a whole image rather than noise outside the holes.

    Args:
        reconstruction: (N, C, Z, Y, X) output of the inpainting head.
        target: the uncorrupted crop, same shape.
        mask: optional boolean corruption mask broadcastable to ``target`` (e.g. (N, 1, Z, Y, X)).
        unmasked_weight: weight of uncorrupted voxels when ``mask`` is given, in [0, 1].

    Raises:
        ValueError: if shapes differ.
        ConfigError: if ``unmasked_weight`` is outside [0, 1].
    """
    if reconstruction.shape != target.shape:
        raise ValueError(f"reconstruction and target must have the same shape, but they are "
                         f"{tuple(reconstruction.shape)} and {tuple(target.shape)}")
    error = (reconstruction.float() - target.float()).abs()
    if mask is None:
        return error.mean()
    if not 0.0 <= unmasked_weight <= 1.0:
        raise ConfigError(f"unmasked_weight must be in [0, 1], found {unmasked_weight}")
    weight = torch.where(mask, 1.0, unmasked_weight).to(error.dtype).expand_as(error)
    return (weight * error).sum() / weight.sum().clamp_min(1e-12)


def rotation_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the 4-class rotation head (0, 90, 180, 270 degrees).

    Args:
        logits: (N, 4) rotation logits.
        labels: (N,) integer labels in 0..3, as returned by ``rotate_views``.

    Raises:
        ValueError: if the shapes do not match that contract.
    """
    if logits.ndim != 2 or logits.shape[1] != 4 or labels.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (N, 4) and labels (N,), found {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    return F.cross_entropy(logits.float(), labels.long())


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy between two views.

    The 2N projections are L2-normalised; for each one, the other view of the same sample is the
    positive and the remaining 2N - 2 projections are the negatives:
    ``l_i = -log(exp(s_ip / t) / sum_{k != i} exp(s_ik / t))``, averaged over all 2N anchors.
    Self-similarities are masked with -inf before a log-sum-exp (``cross_entropy``), so large
    similarities cannot overflow. With N = 1 there are no negatives, the softmax has a single
    finite entry and the loss is exactly 0 with zero (not NaN) gradients: one sample carries no
    contrastive signal.

    Args:
        z1: (N, D) projections of view 1.
        z2: (N, D) projections of view 2, row i from the same sample as row i of ``z1``.
        temperature: softmax temperature (Tang et al.: 0.5).

    Raises:
        ValueError: if the two batches are not both (N, D) with the same shape.
        ConfigError: if ``temperature`` is not positive.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"expected two (N, D) batches of the same shape, found "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ConfigError(f"NT-Xent temperature must be positive, found {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = (z @ z.T) / temperature
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    index = torch.arange(n, device=z.device)
    return F.cross_entropy(logits, torch.cat([index + n, index]))


def density_matching_loss(embeddings: Tensor, modality_ids: Tensor,
                          bandwidth: float | None = None, num_points: int = 64,
                          directions: Tensor | None = None, min_bandwidth: float = 1e-3,
                          groups: tuple[int, int] = DENSITY_GROUPS) -> Tensor:
    """SwinFUSE term: Jensen-Shannon divergence of Gaussian KDEs of CT and MR embeddings.

    Minimise it to make the two modalities' embedding distributions indistinguishable.

    The estimator, a mean over 1D slices of the JSD of grid-evaluated Gaussian KDEs with a
    Scott bandwidth from the pooled within-modality spread, is derived in the module docstring.
    It lies in [0, ln 2], is exactly 0 for identical sample sets and grows with their separation.

    Args:
        embeddings: (N, D) pooled embeddings of the batch.
        modality_ids: (N,) integer modality codes (:data:`swinfuse_auto.dataset.modality.MODALITY_INDEX`).
        bandwidth: one fixed bandwidth for every slice instead of the Scott rule.
        num_points: KDE grid points per slice; keep the grid step below the bandwidth.
        directions: optional (D, K) projection matrix defining the slices.
        min_bandwidth: floor of the bandwidth rule (collapsed embeddings would give h = 0).
        groups: the two modality codes to compare (CT, MR); samples of other codes are ignored.

    Returns:
        A scalar; 0 (a leaf zero, safe to backpropagate) when either group is absent.

    Raises:
        ValueError: if the tensor shapes are inconsistent.
        ConfigError: if ``bandwidth``, ``min_bandwidth`` or ``num_points`` is invalid.
    """
    _check_density_inputs(embeddings, modality_ids, directions, bandwidth, num_points,
                          min_bandwidth)
    values = embeddings.float() if directions is None else embeddings.float() @ directions.float()
    a, b = values[modality_ids == groups[0]].T, values[modality_ids == groups[1]].T
    if a.shape[1] == 0 or b.shape[1] == 0:
        return embeddings.new_zeros((), dtype=torch.float32).requires_grad_(
            embeddings.requires_grad)
    with torch.no_grad():
        if bandwidth is None:
            h = _scott_bandwidth(a, b).clamp_min(min_bandwidth)
        else:
            h = torch.full((a.shape[0], 1), float(bandwidth), device=a.device)
        grid = _kde_grid(torch.cat([a, b], dim=1), h, num_points)
    p, q = _kde_on_grid(a, grid, h), _kde_on_grid(b, grid, h)
    log_m = torch.log(0.5 * (p + q))
    jsd = 0.5 * (p * (torch.log(p) - log_m)).sum(1) + 0.5 * (q * (torch.log(q) - log_m)).sum(1)
    return jsd.mean()


def _check_density_inputs(embeddings: Tensor, modality_ids: Tensor, directions: Tensor | None,
                          bandwidth: float | None, num_points: int, min_bandwidth: float) -> None:
    if embeddings.ndim != 2 or modality_ids.shape != embeddings.shape[:1]:
        raise ValueError(f"expected embeddings (N, D) and modality_ids (N,), found "
                         f"{tuple(embeddings.shape)} and {tuple(modality_ids.shape)}; pool "
                         f"feature maps over their spatial axes first")
    if directions is not None and (directions.ndim != 2
                                   or directions.shape[0] != embeddings.shape[1]):
        raise ValueError(f"directions must be (D, K) with D = {embeddings.shape[1]}, found "
                         f"{tuple(directions.shape)}")
    if bandwidth is not None and bandwidth <= 0:
        raise ConfigError(f"KDE bandwidth must be positive, found {bandwidth}")
    if min_bandwidth <= 0:
        raise ConfigError(f"min_bandwidth must be positive, found {min_bandwidth}")
    if num_points < 2:
        raise ConfigError(f"num_points must be at least 2, found {num_points}")


def _scott_bandwidth(a: Tensor, b: Tensor) -> Tensor:
    """Per-slice (K, 1) Scott bandwidth from the pooled within-modality spread of (K, n) samples."""
    n_a, n_b = a.shape[1], b.shape[1]
    if n_a + n_b > 2:
        squares = ((a - a.mean(1, keepdim=True)) ** 2).sum(1) + \
            ((b - b.mean(1, keepdim=True)) ** 2).sum(1)
        spread = torch.sqrt(squares / (n_a + n_b - 2))
    else:
        spread = torch.cat([a, b], dim=1).std(1)
    return (_SCOTT_FACTOR * spread * min(n_a, n_b) ** -0.2)[:, None]


def _kde_grid(samples: Tensor, h: Tensor, num_points: int) -> Tensor:
    """(K, P) evenly spaced points covering each slice's samples +- 3 bandwidths."""
    low = samples.amin(1, keepdim=True) - _GRID_MARGIN * h
    high = samples.amax(1, keepdim=True) + _GRID_MARGIN * h
    steps = torch.linspace(0.0, 1.0, num_points, device=samples.device)
    return low + (high - low) * steps


def _kde_on_grid(samples: Tensor, grid: Tensor, h: Tensor) -> Tensor:
    """Gaussian KDE of (K, n) samples at the (K, P) grid, normalised to sum 1 per slice."""
    z = (grid[:, :, None] - samples[:, None, :]) / h[:, :, None]
    density = torch.exp(-0.5 * z ** 2).mean(2).clamp_min(_TINY_DENSITY)
    return density / density.sum(1, keepdim=True)


@dataclass(frozen=True)
class PretrainingLossWeights:
    """Weight of each pre-training loss; the field names are the names of the loss parts.

    Tang et al. weigh their three tasks 1/1/1; the density term is kept small (0.1) because it
    is bounded by ln 2 and, with a handful of samples per modality, noisy.

    Raises:
        ConfigError: if a weight is negative or not finite.

    Example:
        >>> PretrainingLossWeights(density_matching=0.0).density_matching
        0.0
    """

    inpainting: float = 1.0
    rotation: float = 1.0
    contrastive: float = 1.0
    density_matching: float = 0.1

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"loss weight '{name}' must be a finite number >= 0, "
                                  f"found {value}")


def combine_losses(parts: Mapping[str, Tensor], weights: PretrainingLossWeights) -> Tensor:
    """Weighted sum of the loss parts computed this step.

    Parts absent from ``parts`` contribute nothing (e.g. no density term on CT-only data), so the
    trainer passes exactly what it computed and logs the same dictionary.

    Args:
        parts: scalar losses keyed by their :class:`PretrainingLossWeights` field name.
        weights: the weight of each name.

    Raises:
        ConfigError: if ``parts`` is empty or names an unknown loss.
    """
    known = asdict(weights)
    unknown = sorted(set(parts) - set(known))
    if unknown or not parts:
        raise ConfigError(f"cannot combine loss parts {sorted(parts)}: expected a non-empty "
                          f"subset of {sorted(known)}")
    return sum((known[name] * value for name, value in parts.items()),
               start=torch.zeros((), device=next(iter(parts.values())).device))
