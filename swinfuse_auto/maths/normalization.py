"""Intensity normalisation schemes, chosen per channel by modality and registered by name.

* ``ct``: clip to the dataset's foreground 0.5/99.5 percentiles, then z-score with the dataset's
  foreground mean and std. Hounsfield units are absolute, so one transform for all cases keeps
  that meaning (fat is fat in every scan).
* ``zscore``: per-image z-score (MR and other modalities have arbitrary units per scan),
  restricted to the non-zero region when cropping removed much of the image, so that the zero
  background does not dominate the statistics.

The plan says which scheme each channel gets
(:class:`swinfuse_auto.plans.schema.NormalizationPlan`); the schemes read only the three fields
of :class:`NormalizationSpec`, so this module needs no plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from swinfuse_auto.registry import Registry


class NormalizationSpec(Protocol):
    """What a scheme is told about one channel: its name, mask use and dataset numbers."""

    @property
    def scheme(self) -> str: ...

    @property
    def use_nonzero_mask(self) -> bool: ...

    @property
    def params(self) -> Mapping[str, float]: ...


NormalizeFn = Callable[[np.ndarray, "np.ndarray | None", NormalizationSpec], np.ndarray]
NORMALIZATIONS: Registry[NormalizeFn] = Registry("normalization scheme")


@NORMALIZATIONS.register("ct")
def normalize_ct(image: np.ndarray, mask: np.ndarray | None,
                 spec: NormalizationSpec) -> np.ndarray:
    p = spec.params
    out = np.clip(image, p["clip_low"], p["clip_high"])
    out -= p["mean"]
    out /= max(p["std"], 1e-8)
    return out


@NORMALIZATIONS.register("zscore")
def normalize_zscore(image: np.ndarray, mask: np.ndarray | None,
                     spec: NormalizationSpec) -> np.ndarray:
    use_mask = spec.use_nonzero_mask and mask is not None and mask.any()
    region = image[mask] if use_mask else image
    mean, std = float(region.mean()), float(region.std())
    out = (image - mean) / max(std, 1e-8)
    if use_mask:
        out[~mask] = 0.0
    return out


def normalize(images: np.ndarray, specs: Sequence[NormalizationSpec],
              mask: np.ndarray | None = None) -> np.ndarray:
    """Normalise each channel of (C, z, y, x) float32 ``images`` with its spec, in place."""
    for channel, spec in enumerate(specs):
        scheme = NORMALIZATIONS.get(spec.scheme)
        images[channel] = scheme(images[channel], mask, spec)
    return images
