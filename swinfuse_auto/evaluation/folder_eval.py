"""Evaluate a folder of predicted label maps against a folder of reference label maps.

Files are paired by name (``CASE.nii.gz`` in both folders). Every reference must have a
prediction and every prediction a reference, and each pair must share its grid (size, spacing,
origin, direction): a prediction on another grid is an error, never silently resampled, because
resampling would hide exactly the export bug an evaluation is meant to catch.

JSON has no NaN or infinity, so ``summary.json`` writes the metric conventions of
:mod:`swinfuse_auto.evaluation.metrics` as: NaN (class absent from both sides: nothing to score)
-> ``null``; ``inf`` (HD95 of a class present on one side only) -> the string ``"inf"``.
:func:`json_safe` does this; :func:`from_json_safe` reverses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swinfuse_auto.errors import DatasetError
from swinfuse_auto.evaluation.metrics import evaluate_case, summarize
from swinfuse_auto.io.atomic import write_json
from swinfuse_auto.io.image import read_image
from swinfuse_auto.parallel import parallel_map

SUMMARY_FILE = "summary.json"
METRIC_NOTES = ("dice, nsd (normalised surface Dice at tolerance_mm), hd95 in mm; null = class "
                "absent from reference and prediction (not scored); \"inf\" = HD95 of a class "
                "present on one side only. Means skip null and keep inf.")


@dataclass(frozen=True)
class _Pair:
    case_id: str
    reference: Path
    prediction: Path
    labels: tuple[int, ...]
    tolerance_mm: float


def json_safe(value: Any) -> Any:
    """Recursively replace NaN by None and +-inf by "inf"/"-inf"; keys become strings."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    return value


def from_json_safe(value: Any) -> Any:
    """The inverse of :func:`json_safe` for metric values (None -> NaN, "inf" -> inf)."""
    if isinstance(value, dict):
        return {k: from_json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_safe(v) for v in value]
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return float(value)
    return value


def _label_files(folder: Path, file_ending: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"The folder {folder} does not exist.")
    return {p.name[: -len(file_ending)]: p for p in sorted(folder.iterdir())
            if p.name.endswith(file_ending) and not p.name.startswith(".") and p.is_file()}


def pair_folders(reference_dir: Path, prediction_dir: Path, file_ending: str = ".nii.gz",
                 cases: Sequence[str] | None = None) -> list[tuple[str, Path, Path]]:
    """(case id, reference, prediction) for every case; both folders must hold the same cases.

    With ``cases`` only those are paired (e.g. a fold's validation cases in labelsTr).

    Raises:
        DatasetError: a folder is missing or empty, or a case is on one side only.
    """
    references = _label_files(Path(reference_dir), file_ending)
    predictions = _label_files(Path(prediction_dir), file_ending)
    if cases is not None:
        wanted = set(cases)
        references = {k: v for k, v in references.items() if k in wanted}
        predictions = {k: v for k, v in predictions.items() if k in wanted}
    if not references:
        raise DatasetError(f"{reference_dir} holds no {file_ending} label files.")
    no_prediction = sorted(set(references) - set(predictions))
    no_reference = sorted(set(predictions) - set(references))
    if no_prediction or no_reference:
        parts = []
        if no_prediction:
            parts.append(f"{len(no_prediction)} reference(s) without a prediction in "
                         f"{prediction_dir} (e.g. {', '.join(no_prediction[:3])})")
        if no_reference:
            parts.append(f"{len(no_reference)} prediction(s) without a reference in "
                         f"{reference_dir} (e.g. {', '.join(no_reference[:3])})")
        raise DatasetError("; ".join(parts) + ". Predict the missing cases or evaluate folders "
                                              "that hold the same cases.")
    return [(case, references[case], predictions[case]) for case in sorted(references)]


def _evaluate_pair(pair: _Pair) -> tuple[str, dict[int, dict[str, float]]]:
    """Top-level (spawn-safe): read both maps, check the grid, compute the metrics."""
    reference, ref_geometry = read_image(pair.reference, dtype=None)
    prediction, pred_geometry = read_image(pair.prediction, dtype=None)
    diffs = ref_geometry.mismatch(pred_geometry)
    if diffs:
        raise DatasetError(
            f"{pair.prediction} and {pair.reference} are not on the same grid ({', '.join(diffs)} "
            f"differ: prediction {pred_geometry.to_dict()}, reference {ref_geometry.to_dict()}). "
            "Evaluation does not resample; export predictions with the reference image's "
            "geometry (predict does this).")
    for path, array in ((pair.reference, reference), (pair.prediction, prediction)):
        if array.dtype.kind == "f" and not np.array_equal(array, np.rint(array)):
            raise DatasetError(f"{path} holds non-integer values; pass label maps, not "
                               "probabilities.")
    metrics = evaluate_case(prediction.astype(np.int32, copy=False),
                            reference.astype(np.int32, copy=False), pair.labels,
                            ref_geometry.spacing_zyx, pair.tolerance_mm)
    return pair.case_id, metrics


def evaluate_folders(reference_dir: Path, prediction_dir: Path, labels: Sequence[int],
                     tolerance_mm: float = 1.0, file_ending: str = ".nii.gz",
                     num_processes: int = 1, output_json: Path | None = None,
                     label_names: dict[int, str] | None = None,
                     cases: Sequence[str] | None = None) -> dict[str, Any]:
    """Dice, NSD and HD95 per case and class, their means, written to ``summary.json``.

    Args:
        reference_dir, prediction_dir: folders of ``CASE<file_ending>`` label maps.
        labels: label values to score (usually the foreground classes).
        tolerance_mm: NSD tolerance.
        num_processes: worker processes (cases are independent).
        output_json: where to write the summary; default ``prediction_dir/summary.json``.
        label_names: value -> name, stored with the results.
        cases: score only these case ids (default: every file of the folders).

    Returns:
        The summary with float values (NaN and inf as in the metrics module).

    Raises:
        DatasetError: unpaired cases, a grid mismatch, unreadable or non-label files.
    """
    pairs = [_Pair(case, ref, pred, tuple(int(v) for v in labels), float(tolerance_mm))
             for case, ref, pred in pair_folders(Path(reference_dir), Path(prediction_dir),
                                                 file_ending, cases)]
    per_case = dict(sorted(parallel_map(_evaluate_pair, pairs, num_processes)))
    summary = {"reference_dir": str(reference_dir), "prediction_dir": str(prediction_dir),
               "tolerance_mm": float(tolerance_mm), "metric_notes": METRIC_NOTES,
               "labels": {int(v): (label_names or {}).get(int(v), str(v)) for v in labels},
               **summarize(per_case), "cases": per_case}
    target = Path(output_json) if output_json else Path(prediction_dir) / SUMMARY_FILE
    write_json(target, json_safe(summary))
    summary["summary_file"] = str(target)
    return summary
