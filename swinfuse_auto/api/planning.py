"""Planning and preprocessing: verify the raw dataset, fingerprint it, plan, preprocess.

Nothing here imports torch, so ``plan_and_preprocess`` and its worker processes never pay for it.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from swinfuse_auto.api.progress import progress_for
from swinfuse_auto.data.splits import load_or_create_splits
from swinfuse_auto.dataset.cases import held_out_cases
from swinfuse_auto.dataset.spec import DatasetSpec, load_dataset_spec
from swinfuse_auto.dataset.verify import raise_for_report, verify_dataset
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.fingerprint.dataset_stats import DatasetFingerprint, compute_fingerprint
from swinfuse_auto.fingerprint.source_digest import source_digest
from swinfuse_auto.io.atomic import read_json, write_json
from swinfuse_auto.paths import PLANS_FILE, SPLITS_FILE, resolve_dataset
from swinfuse_auto.plans.context import PlanningContext
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.plans.targets import choose_target
from swinfuse_auto.preprocessing.runner import preprocess_dataset
from swinfuse_auto.progress import Progress
from swinfuse_auto.registry import DEFAULT_PLANNER, PLANNERS

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "dataset_fingerprint.json"
VERIFY_REPORT_FILE = "verify_report.json"


def default_num_processes() -> int:
    """Worker processes when none are asked for: one per core, at most 8."""
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
                 progress: Progress | None) -> DatasetFingerprint:
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


def plan_dataset(dataset: str | os.PathLike[str], planner: str = DEFAULT_PLANNER,
                 gpu_memory_gb: float | None = None, device: str = "auto",
                 num_processes: int | None = None, verify: bool = False,
                 raw: str | None = None, preprocessed: str | None = None,
                 progress: bool = False) -> PlanningOutcome:
    """Verify, fingerprint and plan (``plans.json``), without preprocessing.

    An existing plans.json made by the same planner for the same target is kept, so hand edits
    survive a re-run; asking for another planner or target plans afresh.

    Args:
        dataset: dataset folder name, numeric id or path.
        planner: registered planner.
        gpu_memory_gb: size the plan for a GPU of this memory (else the visible GPU, else the
            CPU).
        device: "auto", "cpu" or "cuda": which device may be planned for.
        num_processes: worker processes (default: one per core, at most 8).
        verify: read every voxel (NaN/Inf, label values, empty images), not only headers.
        raw, preprocessed: roots overriding SWINFUSE_RAW and SWINFUSE_PREPROCESSED.
        progress: draw progress bars.

    Raises:
        DatasetError: the dataset fails verification (every problem at once).
        ConfigError / RegistryError: a bad folder or an unknown planner.
    """
    location = resolve_dataset(dataset, raw=raw, preprocessed=preprocessed,
                               require=("preprocessed",))
    assert location.preprocessed_dir is not None  # guaranteed by require
    out_dir = location.preprocessed_dir
    if out_dir.resolve() == location.raw_dir.resolve():
        raise ConfigError(f"The preprocessed folder {out_dir} is the raw dataset folder itself; "
                          "the raw data must never be written to. Point SWINFUSE_PREPROCESSED "
                          "(or --preprocessed) to another folder.")
    workers = num_processes or default_num_processes()
    bars = progress_for(progress)
    report = verify_dataset(location.raw_dir, full=verify, num_processes=workers,
                            progress=bars)
    raise_for_report(report, out_dir / VERIFY_REPORT_FILE)
    spec = load_dataset_spec(location.raw_dir)
    planner_class = PLANNERS.get(planner)
    target = choose_target(gpu_memory_gb, device)
    fingerprint = _fingerprint(location.raw_dir, out_dir, workers, bars)
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


def plan_and_preprocess(dataset: str | os.PathLike[str], planner: str = DEFAULT_PLANNER,
                        gpu_memory_gb: float | None = None, device: str = "auto",
                        num_processes: int | None = None, verify: bool = False,
                        raw: str | None = None, preprocessed: str | None = None,
                        progress: bool = False) -> PreprocessResult:
    """Verify, fingerprint, plan, write the folds and preprocess every case.

    Re-running is cheap and safe: finished cases are skipped, an interrupted case is redone.
    The arguments are those of :func:`plan_dataset`.

    Raises:
        DatasetError: the dataset fails verification, or a case cannot be read.
        ConfigError / RegistryError: a bad folder or an unknown planner.
    """
    outcome = plan_dataset(dataset, planner, gpu_memory_gb, device, num_processes, verify, raw,
                           preprocessed, progress)
    out_dir = outcome.preprocessed_dir
    case_ids = [c.case_id for c in outcome.fingerprint.cases]
    load_or_create_splits(out_dir / SPLITS_FILE, case_ids, outcome.plan.num_folds)
    shutil.copyfile(outcome.raw_dir / "dataset.json", out_dir / "dataset.json")
    counts = preprocess_dataset(outcome.raw_dir, outcome.spec, outcome.plan, out_dir,
                                num_processes or default_num_processes(), progress_for(progress))
    return PreprocessResult(out_dir, outcome.plan, outcome.plan_reused, counts["done"],
                            counts["skipped"])
