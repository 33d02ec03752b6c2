"""Intensity normalisation schemes, chosen per channel by modality and registered by name.

* ``ct``: clip to the dataset's foreground 0.5/99.5 percentiles, then z-score with the dataset's
  foreground mean and std. Hounsfield units are absolute, so one transform for all cases keeps
  that meaning (fat is fat in every scan).
* ``zscore``: per-image z-score (MR and other modalities have arbitrary units per scan),
  restricted to the non-zero region when cropping removed much of the image, so that the zero
  background does not dominate the statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from swinfuse_auto.registry import Registry

NormalizeFn = Callable[[np.ndarray, np.ndarray | None, "NormalizationPlan"], np.ndarray]
NORMALIZATIONS: Registry[NormalizeFn] = Registry("normalization scheme")


@dataclass(frozen=True)
class NormalizationPlan:
    """A scheme name plus the dataset-level numbers it needs (empty for per-image schemes)."""

    scheme: str
    use_nonzero_mask: bool = False
    params: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "use_nonzero_mask": self.use_nonzero_mask,
                "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: dict) -> NormalizationPlan:
        return cls(str(d["scheme"]), bool(d.get("use_nonzero_mask", False)),
                   {k: float(v) for k, v in d.get("params", {}).items()})


@NORMALIZATIONS.register("ct")
def normalize_ct(image: np.ndarray, mask: np.ndarray | None, plan: NormalizationPlan) -> np.ndarray:
    p = plan.params
    out = np.clip(image, p["clip_low"], p["clip_high"])
    out -= p["mean"]
    out /= max(p["std"], 1e-8)
    return out


@NORMALIZATIONS.register("zscore")
def normalize_zscore(image: np.ndarray, mask: np.ndarray | None,
                     plan: NormalizationPlan) -> np.ndarray:
    use_mask = plan.use_nonzero_mask and mask is not None and mask.any()
    region = image[mask] if use_mask else image
    mean, std = float(region.mean()), float(region.std())
    out = (image - mean) / max(std, 1e-8)
    if use_mask:
        out[~mask] = 0.0
    return out


def normalize(images: np.ndarray, plans: list[NormalizationPlan],
              mask: np.ndarray | None = None) -> np.ndarray:
    """Normalise each channel of (C, z, y, x) float32 ``images`` with its plan, in place."""
    for channel, plan in enumerate(plans):
        scheme = NORMALIZATIONS.get(plan.scheme)
        images[channel] = scheme(images[channel], mask, plan)
    return images
