"""Per-class segmentation metrics on integer label maps (z, y, x) with physical spacing in mm.

Conventions, chosen so that a summary never silently rewards or hides a failure:

* A class absent from both prediction and reference has nothing to score: Dice, IoU, HD95 and
  NSD are NaN (as nnU-Net reports Dice), and :func:`summarize` skips NaN in its means.
* A class present on one side only is the worst outcome: Dice 0, NSD 0, and HD95 ``inf`` (there
  is no surface to measure a distance to). An ``inf`` propagates into the class mean on purpose:
  a missed or hallucinated structure must stay visible in a cross-validation summary.

Surfaces are the mask voxels with at least one 6-neighbour outside the mask (outside the image
counts as outside). Distances run from each surface voxel to the nearest surface voxel of the
other mask, computed with a Euclidean distance transform in mm on the union bounding box plus a
one-voxel margin, so a small structure in a large CT costs what its box costs. Both distance
metrics count voxels, as MONAI does, rather than weighting surface elements by area as the
DeepMind ``surface-distance`` package does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from swinfuse_auto.errors import ConfigError, DatasetError
from swinfuse_auto.maths.crop import bbox_of, crop

_SIX_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)


class ConfusionCounts(NamedTuple):
    """Voxel counts of one class: true/false positives/negatives."""

    tp: int
    fp: int
    fn: int
    tn: int


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.ndim != 3 or pred.shape != ref.shape:
        raise DatasetError(f"Prediction and reference must be 3D label maps of the same shape, "
                           f"got {pred.shape} and {ref.shape}. Predictions must be on the "
                           "reference's grid (export them with the input's geometry).")


def _check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ConfigError(f"spacing must be three positive finite values in mm, (z, y, x) "
                          f"order, got {tuple(spacing)}; use Geometry.spacing_zyx.")
    return values  # type: ignore[return-value]


def confusion_counts(pred: np.ndarray, ref: np.ndarray, label: int) -> ConfusionCounts:
    """Voxel-wise confusion counts of ``label`` in ``pred`` against ``ref``."""
    _check_pair(pred, ref)
    p, r = pred == label, ref == label
    tp = int(np.count_nonzero(p & r))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(r)) - tp
    return ConfusionCounts(tp, fp, fn, int(p.size) - tp - fp - fn)


def _overlap(counts: ConfusionCounts) -> tuple[float, float]:
    """(Dice, IoU), NaN when the class is absent from both sides."""
    union = counts.tp + counts.fp + counts.fn
    if union == 0:
        return math.nan, math.nan
    return 2 * counts.tp / (union + counts.tp), counts.tp / union


def dice(pred: np.ndarray, ref: np.ndarray, label: int) -> float:
    """Dice of ``label``: 2 TP / (2 TP + FP + FN); NaN when absent from both."""
    return _overlap(confusion_counts(pred, ref, label))[0]


def _surfaces(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface voxels of two boolean masks, on their union box zero-padded by one voxel."""
    box = bbox_of(a | b)
    surface_a, surface_b = (padded ^ ndimage.binary_erosion(padded, _SIX_NEIGHBOURS)
                            for padded in (np.pad(crop(m, box), 1) for m in (a, b)))
    return surface_a, surface_b


def surface_distances(pred: np.ndarray, ref: np.ndarray, label: int, spacing: Sequence[float]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each prediction surface voxel to the reference surface, and back.

    Returns:
        ``(pred_to_ref, ref_to_pred)``; both empty when either mask is empty (no distance is
        defined), which the metric functions turn into their documented conventions.
    """
    _check_pair(pred, ref)
    sampling = _check_spacing(spacing)
    p, r = pred == label, ref == label
    if not p.any() or not r.any():
        return np.zeros(0), np.zeros(0)
    surface_p, surface_r = _surfaces(p, r)
    to_r = ndimage.distance_transform_edt(~surface_r, sampling=sampling)
    to_p = ndimage.distance_transform_edt(~surface_p, sampling=sampling)
    return to_r[surface_p], to_p[surface_r]


def _empty_case(p_empty: bool, r_empty: bool, one_sided: float) -> float | None:
    if p_empty and r_empty:
        return math.nan
    return one_sided if p_empty or r_empty else None


def _hausdorff(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray, p_empty: bool, r_empty: bool,
               percentile: float) -> float:
    empty = _empty_case(p_empty, r_empty, math.inf)
    if empty is not None:
        return empty
    return float(max(np.percentile(pred_to_ref, percentile),
                     np.percentile(ref_to_pred, percentile)))


def _surface_dice(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray, p_empty: bool,
                  r_empty: bool, tolerance_mm: float) -> float:
    empty = _empty_case(p_empty, r_empty, 0.0)
    if empty is not None:
        return empty
    close = np.count_nonzero(pred_to_ref <= tolerance_mm) + np.count_nonzero(
        ref_to_pred <= tolerance_mm)
    return close / (pred_to_ref.size + ref_to_pred.size)


def _presence(pred: np.ndarray, ref: np.ndarray, label: int) -> tuple[bool, bool]:
    """(pred empty, ref empty) for ``label``."""
    return not bool((pred == label).any()), not bool((ref == label).any())


def hausdorff_distance(pred: np.ndarray, ref: np.ndarray, label: int, spacing: Sequence[float],
                       percentile: float = 95.0) -> float:
    """Symmetric percentile Hausdorff distance in mm.

    The larger of the two directed ``percentile``-th surface distances (pred -> ref and
    ref -> pred), as MONAI computes it, so numbers compare with published Swin UNETR results.
    Pooling both directions first (medpy) would let a large well-matched surface dilute the
    errors of the other one. ``percentile=100`` is the classic Hausdorff distance.

    Returns:
        NaN when the class is absent from both, ``inf`` when absent from one side only.
    """
    distances = surface_distances(pred, ref, label, spacing)
    return _hausdorff(*distances, *_presence(pred, ref, label), percentile)


def hausdorff_distance_95(pred: np.ndarray, ref: np.ndarray, label: int,
                          spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance (mm); see :func:`hausdorff_distance`."""
    return hausdorff_distance(pred, ref, label, spacing, 95.0)


def _check_tolerance(tolerance_mm: float) -> None:
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ConfigError(f"tolerance_mm must be a finite distance >= 0 in mm, got "
                          f"{tolerance_mm}.")


def normalized_surface_dice(pred: np.ndarray, ref: np.ndarray, label: int,
                            spacing: Sequence[float], tolerance_mm: float = 1.0) -> float:
    """Normalised surface Dice (Nikolov et al. 2021) at ``tolerance_mm``.

    The fraction of the surface voxels of both masks that lie within ``tolerance_mm`` of the other
    mask's surface. Unlike Dice it forgives boundary disagreements smaller than the tolerance
    (inter-rater variability) and, unlike HD95, it scores the whole surface.

    Returns:
        NaN when the class is absent from both, 0 when absent from one side only.
    """
    _check_tolerance(tolerance_mm)
    distances = surface_distances(pred, ref, label, spacing)
    return _surface_dice(*distances, *_presence(pred, ref, label), tolerance_mm)


def evaluate_case(pred: np.ndarray, ref: np.ndarray, labels: Sequence[int],
                  spacing: Sequence[float], tolerance_mm: float = 1.0
                  ) -> dict[int, dict[str, float]]:
    """All metrics of one case, per label, computing each class's surfaces once.

    Returns:
        ``{label: {"dice", "iou", "hd95", "nsd", "tp", "fp", "fn", "tn", "n_pred", "n_ref"}}``,
        every value a float (counts too, so summaries can average them).
    """
    _check_pair(pred, ref)
    _check_spacing(spacing)
    _check_tolerance(tolerance_mm)
    results = {}
    for label in labels:
        counts = confusion_counts(pred, ref, label)
        dice_value, iou = _overlap(counts)
        p_empty, r_empty = counts.tp + counts.fp == 0, counts.tp + counts.fn == 0
        distances = surface_distances(pred, ref, label, spacing)
        results[int(label)] = {
            "dice": dice_value, "iou": iou,
            "hd95": _hausdorff(*distances, p_empty, r_empty, 95.0),
            "nsd": _surface_dice(*distances, p_empty, r_empty, tolerance_mm),
            **{name: float(value) for name, value in counts._asdict().items()},
            "n_pred": float(counts.tp + counts.fp), "n_ref": float(counts.tp + counts.fn),
        }
    return results


def _mean_ignoring_nan(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def summarize(per_case: Mapping[str, Mapping[int, Mapping[str, float]]]) -> dict:
    """Per-class means over cases, and their mean over the foreground classes (labels != 0).

    NaN (class absent from both sides) is skipped; ``inf`` is kept (see the module notes). The
    foreground mean averages the class means, as nnU-Net does, so every class weighs the same
    however many cases contain it.

    Returns:
        ``{"num_cases": n, "mean": {label: {metric: value}}, "foreground_mean": {metric: value}}``.
    """
    labels = sorted({int(label) for case in per_case.values() for label in case})
    means: dict[int, dict[str, float]] = {}
    for label in labels:
        rows = [case[label] for case in per_case.values() if label in case]
        metrics = sorted({name for row in rows for name in row})
        means[label] = {name: _mean_ignoring_nan([row[name] for row in rows if name in row])
                        for name in metrics}
    foreground = [means[label] for label in labels if label != 0]
    metrics = sorted({name for row in foreground for name in row})
    return {
        "num_cases": len(per_case),
        "mean": means,
        "foreground_mean": {name: _mean_ignoring_nan([row[name] for row in foreground
                                                       if name in row]) for name in metrics},
    }
