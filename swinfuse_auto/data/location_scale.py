"""Class-aware location-scale augmentation (after SLAug, Su et al., AAAI 2023).

A network trained on one modality learns the intensities of its organs; on another modality the
same organ has another intensity, and often another order (fat is dark in CT and bright in T1).
This augmentation makes absolute intensity useless as a cue, so shape, position and boundaries are
what is left to learn. Each structure gets its own random intensity curve:

* global (GLA): one random smooth curve for the whole image, then a random scale and shift;
* class-aware (LLA): every class present in the label, background included, gets its *own*
  curve, scale and shift, so the contrast between two organs takes a random sign and size. The
  per-class results are blended with soft (Gaussian-smoothed) class masks, so no intensity step
  appears along a label boundary that the network could learn to find instead of the organ's
  edge.

Curves are cubic Bezier curves on [0, 1], inverted with probability 1/2 (background: always, as
in SLAug, so the body's surroundings never keep their CT brightness). A class's curve has
interior control points beyond the unit square, so it may rise, fall and turn (non-monotone):
tissues inside the background can swap their order, as fat and muscle do between CT, T1 and T2.
The global curve stays monotone (control points inside the square): one non-monotone curve for
the whole image would merge organs with their surroundings and leave a label that no image
supports (a first version did, and a 600-step CT run plateaued at half the Dice). Values are not
clipped, so no curve flattens a range of intensities into one. Each sample and channel is
first mapped to [0, 1] by its own 1st/99th percentiles and mapped back to that range after, so
the stage works on any normalisation. The label is read, never changed.

Random numbers come only from the caller's ``numpy.random.Generator``: curves and blend weights
are drawn first (:func:`draw_curves`) and applied after, so a seed reproduces the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from swinfuse_auto.errors import ConfigError

#: Points at which a Bezier curve is evaluated before interpolating it at every voxel.
_CURVE_POINTS = 256
#: Percentiles mapped to 0 and 1 before the curves (robust to a few bright or dark voxels).
_RANGE_PERCENTILES = (1.0, 99.0)
#: Range of the interior control points' values: monotone curves, and class curves that may
#: turn back.
MONOTONE_CONTROLS = (0.0, 1.0)
TURNING_CONTROLS = (-0.5, 1.5)
_EPS = 1e-6


@dataclass(frozen=True)
class IntensityCurve:
    """A random intensity mapping of [0, 1]: a Bezier curve, then ``scale * y + shift``."""

    x: np.ndarray  # (_CURVE_POINTS,) increasing abscissae of the sampled curve
    y: np.ndarray  # (_CURVE_POINTS,) its values
    scale: float
    shift: float

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return (np.interp(values, self.x, self.y) * self.scale + self.shift).astype(np.float32)


def draw_curve(rng: np.random.Generator, invert_probability: float = 0.5,
               controls_range: tuple[float, float] = MONOTONE_CONTROLS,
               scale_range: tuple[float, float] = (0.8, 1.2),
               shift_std: float = 0.1) -> IntensityCurve:
    """A cubic Bezier curve from (0, 0) to (1, 1) guided by two random control points whose
    values lie in ``controls_range`` (within [0, 1]: monotone), inverted (y -> 1 - y) with
    ``invert_probability``, with a random scale and a Gaussian shift."""
    xs = np.sort(rng.uniform(0.0, 1.0, 2))
    ys = rng.uniform(*controls_range, 2)
    t = np.linspace(0.0, 1.0, _CURVE_POINTS)[:, None]
    controls = np.array([[0.0, 0.0], [xs[0], ys[0]], [xs[1], ys[1]], [1.0, 1.0]])
    weights = np.concatenate([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3],
                             axis=1)
    curve = weights @ controls  # x(t) is increasing because the control abscissae are sorted
    y = 1.0 - curve[:, 1] if rng.uniform() < invert_probability else curve[:, 1]
    return IntensityCurve(curve[:, 0], y, float(rng.uniform(*scale_range)),
                          float(rng.normal(0.0, shift_std)))


def draw_curves(classes: list[int], rng: np.random.Generator) -> dict[int, IntensityCurve]:
    """One curve per class, possibly non-monotone; background (0 and below: ignored voxels) is
    always inverted."""
    return {c: draw_curve(rng, 1.0 if c <= 0 else 0.5, TURNING_CONTROLS) for c in classes}


def soft_class_weights(seg: np.ndarray, classes: list[int], sigma: float) -> np.ndarray:
    """(K, z, y, x) weights summing to 1 per voxel: each class mask smoothed by a Gaussian."""
    weights = np.stack([ndimage.gaussian_filter((seg == c).astype(np.float32), sigma)
                        for c in classes])
    weights /= np.maximum(weights.sum(0, keepdims=True), _EPS)
    return weights


def _to_unit_range(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    low, high = np.percentile(image, _RANGE_PERCENTILES)
    span = max(float(high - low), _EPS)
    return np.clip((image - low) / span, 0.0, 1.0), float(low), span


def global_location_scale(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """GLA on one (z, y, x) image: one random curve for every voxel."""
    unit, low, span = _to_unit_range(image)
    return draw_curve(rng)(unit) * span + low


def class_location_scale(image: np.ndarray, seg: np.ndarray, rng: np.random.Generator,
                         sigma: float = 1.0) -> np.ndarray:
    """LLA on one (z, y, x) image: a curve per class of ``seg``, blended by soft class masks."""
    unit, low, span = _to_unit_range(image)
    classes = [int(c) for c in np.unique(seg)]
    curves = draw_curves(classes, rng)
    weights = soft_class_weights(seg, classes, sigma)
    out = np.zeros_like(unit, dtype=np.float32)
    for weight, c in zip(weights, classes):
        out += weight * curves[c](unit)
    return out * span + low


class LocationScaleAugmentation:
    """Augmentation stage: class-aware (or, otherwise, global) location-scale per sample.

    A stage of :class:`swinfuse_auto.data.augmentation.AugmentationPipeline`: it takes and
    returns (image (B, C, z, y, x) float32, seg (B, 1, z, y, x)) and returns ``seg`` unchanged.

    Args:
        probability: chance that a sample is augmented (every channel, each with its own curves).
        class_aware_probability: chance that an augmented sample gets per-class curves (LLA)
            rather than one global curve (GLA).
        sigma: boundary blending width in voxels.

    Raises:
        ConfigError: a probability outside [0, 1] or a negative sigma.

    Example:
        >>> stage = LocationScaleAugmentation(probability=1.0)
        >>> image, seg = stage(image, seg, np.random.default_rng(0))
    """

    def __init__(self, probability: float, class_aware_probability: float = 0.5,
                 sigma: float = 1.0) -> None:
        for name, p in (("probability", probability),
                        ("class_aware_probability", class_aware_probability)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"LocationScaleAugmentation {name}: expected a probability "
                                  f"in [0, 1], found {p}.")
        if sigma < 0:
            raise ConfigError(f"LocationScaleAugmentation sigma: expected >= 0 voxels, found "
                              f"{sigma}.")
        self.probability = probability
        self.class_aware_probability = class_aware_probability
        self.sigma = sigma

    def __call__(self, image: np.ndarray, seg: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        out = np.array(image, dtype=np.float32)
        for b in range(out.shape[0]):
            if rng.uniform() >= self.probability:
                continue
            class_aware = rng.uniform() < self.class_aware_probability
            for c in range(out.shape[1]):
                out[b, c] = (class_location_scale(out[b, c], seg[b, 0], rng, self.sigma)
                             if class_aware else global_location_scale(out[b, c], rng))
        return out, seg
