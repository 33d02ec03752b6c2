"""``summarize_cv``: the cross-validation table and the postprocessing decision.

Per fold, the validation summaries are read as written by training; the table gives per class
and mean Dice, NSD and HD95 per fold and over all validation cases. For every class, keeping
only the largest connected component is tried on every validation prediction and adopted when
it raises that class's mean Dice over all folds (nnU-Net's rule), then stored as
``postprocessing.json`` beside the folds, where ``predict`` applies it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from swinfuse_auto.errors import PreprocessingError
from swinfuse_auto.evaluation.folder_eval import SUMMARY_FILE, from_json_safe, json_safe
from swinfuse_auto.evaluation.metrics import dice
from swinfuse_auto.inference.postprocessing import (PostprocessingDecision, apply_postprocessing,
                                                    save_postprocessing)
from swinfuse_auto.io.atomic import read_json, write_json
from swinfuse_auto.io.image import read_image
from swinfuse_auto.paths import CV_SUMMARY_FILE, VALIDATION_FOLDER, fold_folder_name

METRICS = ("dice", "nsd", "hd95")


def _fold_summaries(model_dir: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for fold_dir in sorted(Path(model_dir).glob("fold_*")):
        path = fold_dir / VALIDATION_FOLDER / SUMMARY_FILE
        if path.exists():
            found[fold_dir.name[len("fold_"):]] = from_json_safe(read_json(path))
    if not found:
        raise PreprocessingError(f"No fold in {model_dir} has validation results "
                                 "(fold_K/validation/summary.json). Train folds with train_fold "
                                 "first; fold 'all' has no validation.")
    return found


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _decide_postprocessing(summaries: dict[str, dict[str, Any]], model_dir: Path,
                           labels: list[int], file_ending: str) -> tuple[list[int], dict]:
    """Classes whose mean validation Dice improves with the largest component only."""
    before = {c: [] for c in labels}
    after = {c: [] for c in labels}
    for fold, summary in summaries.items():
        reference_dir = Path(summary["reference_dir"])
        for case_id in summary["cases"]:
            prediction, _ = read_image(model_dir / fold_folder_name(fold) / VALIDATION_FOLDER
                                       / f"{case_id}{file_ending}", dtype=None)
            reference, _ = read_image(reference_dir / f"{case_id}{file_ending}", dtype=None)
            for label in labels:
                before[label].append(dice(prediction, reference, label))
                single = apply_postprocessing(prediction.copy(), PostprocessingDecision((label,)))
                after[label].append(dice(single, reference, label))
    chosen = [c for c in labels if _mean(after[c]) > _mean(before[c]) + 1e-6]
    return chosen, {str(c): {"dice_before": _mean(before[c]), "dice_after": _mean(after[c])}
                    for c in labels}


def summarize_cross_validation(model_dir: Path, file_ending: str = ".nii.gz"
                               ) -> dict[str, Any]:
    """Aggregate every fold's validation, decide the postprocessing, write both JSON files."""
    summaries = _fold_summaries(model_dir)
    labels = sorted(int(k) for k in next(iter(summaries.values()))["labels"])
    table: dict[str, Any] = {"folds": {}, "labels": next(iter(summaries.values()))["labels"]}
    pooled: dict[int, dict[str, list[float]]] = {c: {m: [] for m in METRICS} for c in labels}
    for fold, summary in summaries.items():
        table["folds"][fold] = {"mean": summary["mean"],
                                "foreground_mean": summary["foreground_mean"],
                                "num_cases": summary["num_cases"]}
        for case in summary["cases"].values():
            for label in labels:
                for metric in METRICS:
                    pooled[label][metric].append(case[str(label)][metric])
    table["mean"] = {str(c): {m: _mean(pooled[c][m]) for m in METRICS} for c in labels}
    table["foreground_mean"] = {m: _mean([table["mean"][str(c)][m] for c in labels])
                                for m in METRICS}
    chosen, evidence = _decide_postprocessing(summaries, Path(model_dir), labels, file_ending)
    save_postprocessing(Path(model_dir), PostprocessingDecision(tuple(chosen)))
    table["postprocessing"] = {"largest_component_classes": chosen, "evidence": evidence}
    write_json(Path(model_dir) / CV_SUMMARY_FILE, json_safe(table))
    return table


def format_table(table: dict[str, Any]) -> str:
    """The cross-validation table as fixed-width text (rows: folds and mean; columns: classes)."""
    labels = table["labels"]
    header = f"{'fold':>6} " + " ".join(f"{labels[k][:12]:>12}" for k in labels) + f" {'mean':>8}"
    rows = [header, "-" * len(header)]
    entries = [(f, s["mean"], s["foreground_mean"]) for f, s in table["folds"].items()]
    entries.append(("all", table["mean"], table["foreground_mean"]))
    for name, per_class, mean in entries:
        cells = " ".join(f"{per_class[k]['dice']:>12.4f}" for k in labels)
        rows.append(f"{name:>6} {cells} {mean['dice']:>8.4f}")
    chosen = table["postprocessing"]["largest_component_classes"]
    rows.append(f"Dice per class. Largest-component postprocessing for classes: "
                f"{chosen or 'none'}")
    return "\n".join(rows)
