"""Scoring: the cross-validation table (``summarize_cv``) and folder-vs-folder metrics
(``evaluate``, :func:`swinfuse_auto.evaluation.folder_eval.evaluate_folders` as it is)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.evaluation.cross_validation import summarize_cross_validation
from swinfuse_auto.evaluation.folder_eval import evaluate_folders
from swinfuse_auto.paths import CV_SUMMARY_FILE, model_folder_name, resolve_dataset
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_TRAINER

__all__ = ["evaluate_folders", "summarize_cv"]


def summarize_cv(dataset: str | os.PathLike[str], trainer: str = DEFAULT_TRAINER,
                 planner: str = DEFAULT_PLANNER, raw: str | None = None,
                 results: str | None = None) -> tuple[dict[str, Any], Path]:
    """The cross-validation table of a model folder, and its postprocessing decision.

    Reads every fold's ``validation/summary.json``, decides per class whether keeping only the
    largest connected component raises the CV Dice, and writes ``cv_summary.json`` and
    ``postprocessing.json`` (which ``predict`` applies).

    Args:
        dataset: dataset folder name, numeric id or path.
        trainer, planner: which model folder (``<trainer>__<planner>``).
        raw, results: roots overriding the environment variables.

    Returns:
        The table and the path of ``cv_summary.json``.

    Raises:
        PreprocessingError: no fold has validation results yet.
    """
    location = resolve_dataset(dataset, raw=raw, results=results, require=("results",))
    assert location.results_dir is not None  # guaranteed by require
    model_dir = location.results_dir / model_folder_name(trainer, planner)
    spec = load_dataset_spec(location.raw_dir)
    table = summarize_cross_validation(model_dir, spec.file_ending)
    return table, model_dir / CV_SUMMARY_FILE
