"""Preprocess every case of a dataset in parallel, resumably, never touching the raw data."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

from swinfuse_auto.dataset.case_reader import log_warnings, raise_for_errors, read_case
from swinfuse_auto.dataset.cases import Case, held_out_cases, training_cases
from swinfuse_auto.dataset.spec import DatasetSpec
from swinfuse_auto.dataset.verify_checks import Issue
from swinfuse_auto.parallel import parallel_map, release_freed_memory
from swinfuse_auto.plans.schema import NormalizationPlan, Plan
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore
from swinfuse_auto.preprocessing.case import (CaseProperties, RawArrays, preprocess_arrays,
                                              sample_class_locations)
from swinfuse_auto.progress import Progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    case: Case
    modalities: tuple[str, ...]
    normalization: tuple[NormalizationPlan, ...]
    plan: Plan
    store: CaseStore
    foreground: tuple[int, ...]
    labels: dict[str, int] | None  # dataset.json's classes, to check the label values


def normalization_for(plan: Plan, spec: DatasetSpec, modalities: tuple[str, ...]
                      ) -> list[NormalizationPlan]:
    """The training channels' schemes, or the per-modality ones for an image of other modalities.

    An MR case kept in imagesTs of a CT dataset must not be normalised with CT statistics.
    """
    if modalities == tuple(m.value for m in spec.modalities):
        return list(plan.configuration.normalization)
    return [plan.pretraining.modality_normalization[m] for m in modalities]


def _preprocess_one(job: _Job) -> list[Issue]:
    """Preprocess and store one case; returns the warnings that reading it gave.

    Label values are checked again although the fingerprint did so: a fingerprint is reused
    while the raw files keep their size and time, and may come from a version without the
    check. NaN/Inf are counted only in unlabelled images, the ones the fingerprint never read.

    Raises:
        DatasetError: the label holds values that dataset.json does not define (nothing of the
            case is written).
    """
    case = job.case
    arrays = read_case(case, labels=job.labels, count_non_finite=case.label is None)
    raise_for_errors(arrays.issues, f"Nothing was written for case {case.case_id}.")
    raw = RawArrays(arrays.images, arrays.label)
    geometry, issues = arrays.geometry, arrays.issues
    del arrays  # preprocess_arrays frees the arrays as soon as each is used
    data, seg, box, shape = preprocess_arrays(raw, geometry, job.plan.configuration,
                                              list(job.normalization))
    locations = sample_class_locations(seg, list(job.foreground), seed=zlib.crc32(case.case_id.encode())) \
        if seg is not None else {}
    properties = CaseProperties(case.case_id, geometry, box, shape, job.modalities, locations)
    job.store.write(properties, data, seg, job.plan.digest())
    del data, seg
    release_freed_memory()
    return issues


def preprocess_cases(cases: list[tuple[Case, tuple[str, ...]]], plan: Plan, store: CaseStore,
                     normalization: list[NormalizationPlan] | None, num_processes: int = 1,
                     progress: Progress | None = None, spec: DatasetSpec | None = None
                     ) -> dict[str, int]:
    """Preprocess (case, modalities) pairs into ``store``, skipping finished ones.

    ``normalization`` applies to every case; when None it is chosen per case from its
    modalities (which needs ``spec``).
    """
    digest = plan.digest()
    store.remove_stale_temporaries()
    foreground = tuple(spec.foreground_labels) if spec is not None else ()
    labels = dict(spec.labels) if spec is not None else None
    jobs, skipped = [], 0
    for case, modalities in cases:
        if store.is_complete(case.case_id, digest, case.label is not None):
            skipped += 1
            continue
        norm = normalization
        if norm is None:
            assert spec is not None, "per-case normalisation needs the dataset spec"
            norm = normalization_for(plan, spec, modalities)
        jobs.append(_Job(case, modalities, tuple(norm), plan, store, foreground, labels))
    if skipped:
        logger.info("%s: %d case(s) already preprocessed with this plan", store.folder, skipped)
    results = parallel_map(_preprocess_one, jobs, num_processes, "preprocess", progress)
    log_warnings([issue for case_issues in results for issue in case_issues])
    return {"done": len(jobs), "skipped": skipped}


def preprocess_dataset(raw_dir: Path, spec: DatasetSpec, plan: Plan, output_dir: Path,
                       num_processes: int = 1, progress: Progress | None = None,
                       include_unlabelled: bool = True) -> dict[str, int]:
    """Preprocess labelled training cases (and imagesTs images for pre-training).

    Returns:
        Counts over both folders: 'done' (processed now), 'skipped' (already finished).
    """
    groups = [(CaseStore(Path(output_dir) / LABELLED_FOLDER),
               [c for c in training_cases(raw_dir, spec) if c.label is not None])]
    if include_unlabelled:
        groups.append((CaseStore(Path(output_dir) / UNLABELLED_FOLDER),
                       [Case(c.case_id, c.images) for c in held_out_cases(raw_dir, spec)]))
    totals = {"done": 0, "skipped": 0}
    for store, cases in groups:
        pairs = [(c, tuple(m.value for m in spec.modalities_for(c.case_id))) for c in cases]
        counts = preprocess_cases(pairs, plan, store, None, num_processes, progress, spec)
        totals = {k: totals[k] + counts[k] for k in totals}
    return totals
