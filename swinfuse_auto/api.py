"""The Python API: one typed function per stage. The commands are thin wrappers around these,
so notebooks and services get exactly what the shell gets."""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swinfuse_auto.data.splits import load_or_create_splits
from swinfuse_auto.dataset.cases import held_out_cases
from swinfuse_auto.dataset.spec import DatasetSpec, load_dataset_spec
from swinfuse_auto.dataset.verify import raise_for_report, verify_dataset
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.fingerprint.dataset_stats import DatasetFingerprint, compute_fingerprint
from swinfuse_auto.fingerprint.source_digest import source_digest
from swinfuse_auto.io.atomic import read_json, write_json
from swinfuse_auto.paths import PLANS_FILE, SPLITS_FILE, resolve_dataset
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.runner import preprocess_dataset
from swinfuse_auto.registry import PLANNERS

__all__ = ["SegmentationModel", "evaluate_folders", "export_model", "load_model",
           "plan_and_preprocess", "plan_dataset", "predict_folder", "pretrain", "summarize_cv",
           "train_fold"]

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "dataset_fingerprint.json"
VERIFY_REPORT_FILE = "verify_report.json"


def default_num_processes() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class PreprocessResult:
    """Where plan_and_preprocess put things, and what it did."""

    preprocessed_dir: Path
    plan: Plan
    plan_reused: bool
    cases_done: int
    cases_skipped: int


def _fingerprint(raw_dir: Path, out_dir: Path, num_processes: int,
                 progress: bool) -> DatasetFingerprint:
    """Reuse a fingerprint of the same raw files; otherwise compute and store it."""
    path = out_dir / FINGERPRINT_FILE
    digest = source_digest(raw_dir)
    if path.exists():
        stored = read_json(path)
        if stored.get("source_digest") == digest:
            logger.info("raw files unchanged: reusing %s", path)
            return DatasetFingerprint.from_dict(stored)
    spec = load_dataset_spec(raw_dir)
    fingerprint = compute_fingerprint(raw_dir, spec, num_processes, progress)
    write_json(path, {**fingerprint.to_dict(), "source_digest": digest})
    return fingerprint


@dataclass(frozen=True)
class PlanningOutcome:
    """What planning produced and the inputs later steps reuse."""

    plan: Plan
    plan_reused: bool
    raw_dir: Path
    preprocessed_dir: Path
    spec: DatasetSpec
    fingerprint: DatasetFingerprint


def plan_dataset(dataset: str | os.PathLike[str], planner: str = "default",
                 gpu_memory_gb: float | None = None, device: str = "auto",
                 num_processes: int | None = None, verify: bool = False,
                 raw: str | None = None, preprocessed: str | None = None,
                 progress: bool = False) -> PlanningOutcome:
    """Verify, fingerprint and plan.

    An existing plans.json made by the same planner for the same target is kept, so hand edits
    survive a re-run; asking for another planner or target plans afresh.
    """
    from planners.default import PlanningContext
    from planners.targets import choose_target

    location = resolve_dataset(dataset, raw=raw, preprocessed=preprocessed,
                               require=("preprocessed",))
    assert location.preprocessed_dir is not None  # guaranteed by require
    out_dir = location.preprocessed_dir
    if out_dir.resolve() == location.raw_dir.resolve():
        raise ConfigError(f"The preprocessed folder {out_dir} is the raw dataset folder itself; "
                          "the raw data must never be written to. Point SWINFUSE_PREPROCESSED "
                          "(or --preprocessed) to another folder.")
    workers = num_processes or default_num_processes()
    report = verify_dataset(location.raw_dir, full=verify, num_processes=workers,
                            progress=progress)
    raise_for_report(report, out_dir / VERIFY_REPORT_FILE)
    spec = load_dataset_spec(location.raw_dir)
    planner_class = PLANNERS.get(planner)
    target = choose_target(gpu_memory_gb, device)
    fingerprint = _fingerprint(location.raw_dir, out_dir, workers, progress)
    plans_path = out_dir / PLANS_FILE
    if plans_path.exists():
        existing = Plan.load(plans_path)
        if existing.planner == planner and existing.target == target:
            logger.info("keeping existing %s (same planner and target)", plans_path)
            return PlanningOutcome(existing, True, location.raw_dir, out_dir, spec, fingerprint)
    extra = frozenset(m.value for case in held_out_cases(location.raw_dir, spec)
                      for m in spec.modalities_for(case.case_id))
    plan = planner_class(PlanningContext(location.name, spec, fingerprint, target, extra)).plan()
    plan.save(plans_path)
    return PlanningOutcome(plan, False, location.raw_dir, out_dir, spec, fingerprint)


def plan_and_preprocess(dataset: str | os.PathLike[str], planner: str = "default",
                        gpu_memory_gb: float | None = None, device: str = "auto",
                        num_processes: int | None = None, verify: bool = False,
                        raw: str | None = None, preprocessed: str | None = None,
                        progress: bool = False) -> PreprocessResult:
    """Verify, fingerprint, plan, write the folds and preprocess every case.

    Re-running is cheap and safe: finished cases are skipped, an interrupted case is redone.
    """
    outcome = plan_dataset(dataset, planner, gpu_memory_gb, device, num_processes, verify, raw,
                           preprocessed, progress)
    out_dir = outcome.preprocessed_dir
    case_ids = [c.case_id for c in outcome.fingerprint.cases]
    load_or_create_splits(out_dir / SPLITS_FILE, case_ids, outcome.plan.num_folds)
    shutil.copyfile(outcome.raw_dir / "dataset.json", out_dir / "dataset.json")
    counts = preprocess_dataset(outcome.raw_dir, outcome.spec, outcome.plan, out_dir,
                                num_processes or default_num_processes(), progress)
    return PreprocessResult(out_dir, outcome.plan, outcome.plan_reused, counts["done"],
                            counts["skipped"])


#: Stages that need torch, imported on first use so that planning never pays for torch.
_LAZY = {"pretrain": "swinfuse_auto.training.pretrain_runner",
         "train_fold": "swinfuse_auto.training.train_fold_runner",
         "evaluate_folders": "swinfuse_auto.evaluation.folder_eval",
         "export_model": "swinfuse_auto.inference.api_predict",
         "load_model": "swinfuse_auto.inference.api_predict",
         "predict_folder": "swinfuse_auto.inference.api_predict",
         "SegmentationModel": "swinfuse_auto.inference.model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def summarize_cv(dataset: str | os.PathLike[str], trainer: str = "swin_dim_finetune",
                 planner: str = "default", raw: str | None = None,
                 results: str | None = None) -> tuple[dict, Path]:
    """Cross-validation table of a model folder plus its postprocessing decision."""
    from swinfuse_auto.evaluation.cross_validation import (CV_SUMMARY_FILE,
                                                           summarize_cross_validation)
    from swinfuse_auto.training.fold_model import model_folder_name

    location = resolve_dataset(dataset, raw=raw, results=results, require=("results",))
    assert location.results_dir is not None
    model_dir = location.results_dir / model_folder_name(trainer, planner)
    spec = load_dataset_spec(location.raw_dir)
    table = summarize_cross_validation(model_dir, spec.file_ending)
    return table, model_dir / CV_SUMMARY_FILE
