"""Predict a folder of cases with reading, inference and writing overlapped.

Three stages run at once, each on its own thread, one case apart: while the network predicts case
*i*, a reader thread reads and preprocesses case *i + 1* and a writer thread postprocesses and
compresses case *i - 1* to disk. At most one case waits in each stage, so memory is bounded by
three cases, never by the folder. Network inference and resampling back stay on the calling
thread, where the device is. SimpleITK, gzip, numpy and torch release the GIL in their heavy
loops, so threads are enough, and no model is copied into worker processes.

A case that cannot be read or predicted is recorded with its message and the others go on; the
report tells the caller (the ``predict`` command exits non-zero when any case failed). An error
writing into the output folder (a full disk, lost permissions) stops the run instead: every later
case would fail the same way.

A re-run skips a case only when its outputs are whole (a killed run can leave a 0-byte or cut-off
file), and first deletes the hidden temporaries that a killed run left in the output folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from swinfuse_auto.errors import SwinfuseError
from swinfuse_auto.inference.input_cases import InputCase, read_input_case
from swinfuse_auto.inference.postprocessing import apply_postprocessing
from swinfuse_auto.inference.segmentation_model import PreparedCase, SegmentationModel
from swinfuse_auto.io.atomic import atomic_path, remove_stale_temporaries, write_json
from swinfuse_auto.io.image import Geometry, write_image
from swinfuse_auto.io.output_checks import file_problem

logger = logging.getLogger(__name__)

PROBABILITIES_SUFFIX = "_probabilities"
WRITTEN, SKIPPED, FAILED = "written", "skipped", "failed"


@dataclass(frozen=True)
class CaseOutcome:
    """What happened to one case: written, skipped (already predicted) or failed (why)."""

    case_id: str
    status: str
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAILED


@dataclass
class PredictionReport:
    """Outcomes in case order, and seconds spent per stage (summed over cases)."""

    output_dir: Path
    outcomes: list[CaseOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: {
        "read_preprocess": 0.0, "network": 0.0, "resample": 0.0, "write": 0.0})

    def with_status(self, status: str) -> list[CaseOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[CaseOutcome]:
        return self.with_status(FAILED)

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "timings_s": dict(self.timings),
                "cases": [vars(o) for o in self.outcomes]}


class PredictionListener(Protocol):
    """Progress hooks (the API layer implements them with tqdm; library code never prints)."""

    def case_started(self, case_id: str) -> None: ...

    def windows(self, done: int, total: int) -> None: ...

    def case_finished(self, outcome: CaseOutcome) -> None: ...


@dataclass(frozen=True)
class FolderOptions:
    """Per-run choices of folder prediction.

    Args:
        save_probabilities: also write ``CASE_probabilities.npy`` (K, z, y, x) float32 on the
            input grid (memory-mappable) and ``CASE_probabilities.json`` (class names, geometry).
        overwrite: predict cases whose outputs exist already (skipped otherwise).
        channel_names: channel names (modalities) for every case; default: dataset.json's.
    """

    save_probabilities: bool = False
    overwrite: bool = False
    channel_names: tuple[str, ...] | None = None


def output_paths(output_dir: Path, case_id: str, file_ending: str) -> tuple[Path, Path, Path]:
    """(segmentation, probabilities .npy, probabilities .json) of a case."""
    stem = Path(output_dir) / f"{case_id}{PROBABILITIES_SUFFIX}"
    return (Path(output_dir) / f"{case_id}{file_ending}", stem.with_suffix(".npy"),
            stem.with_suffix(".json"))


def _is_done(paths: tuple[Path, Path, Path], save_probabilities: bool) -> bool:
    """Whether a case's outputs exist and are whole; a damaged one is logged and redone."""
    needed = paths if save_probabilities else paths[:1]
    if not all(path.exists() for path in needed):
        return False
    for path in needed:
        problem = file_problem(path)
        if problem is not None:
            logger.warning("%s is damaged (%s); predicting the case again", path, problem)
            return False
    return True


def _is_output_error(exc: BaseException, output_dir: Path) -> bool:
    """An OS error about a file of the output folder: it would stop every later case too."""
    return (isinstance(exc, OSError) and exc.filename is not None
            and Path(exc.filename).absolute().parent == output_dir.absolute())


def _read_and_prepare(model: SegmentationModel, case: InputCase,
                      channel_names: tuple[str, ...] | None) -> tuple[PreparedCase, float]:
    started = time.perf_counter()
    images, geometry = read_input_case(case)
    prepared = model.prepare(images, geometry, case.case_id, channel_names)
    return prepared, time.perf_counter() - started


def _write_segmentation(model: SegmentationModel, labels: np.ndarray, geometry: Geometry,
                        path: Path) -> float:
    started = time.perf_counter()
    write_image(apply_postprocessing(labels, model.postprocessing), geometry, path)
    return time.perf_counter() - started


def _write_probabilities(model: SegmentationModel, probabilities: torch.Tensor,
                         prepared: PreparedCase, npy_path: Path, json_path: Path) -> None:
    shape = (model.num_classes, *prepared.properties.geometry.shape_zyx)
    with atomic_path(npy_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        model.raw_probabilities(probabilities, prepared, out)
        out.flush()
        del out
    names = {value: name for name, value in model.spec.labels.items()}
    write_json(json_path, {"case_id": prepared.properties.case_id, "array_order": "k, z, y, x",
                           "classes": [names.get(k, str(k)) for k in range(model.num_classes)],
                           "geometry": prepared.properties.geometry.to_dict()})


class _FolderRun:
    """State of one folder prediction; the three stages hand cases to each other."""

    def __init__(self, model: SegmentationModel, output_dir: Path, options: FolderOptions,
                 listener: PredictionListener | None) -> None:
        self.model = model
        self.options = options
        self.listener = listener
        self.report = PredictionReport(Path(output_dir))
        self.writes: list[tuple[str, Future[float]]] = []

    def fail(self, case_id: str, exc: BaseException) -> None:
        """Record a failed case, or re-raise an error of the output folder (see the module)."""
        if _is_output_error(exc, self.report.output_dir):
            raise exc
        if not isinstance(exc, SwinfuseError):
            logger.error("case %s failed unexpectedly", case_id, exc_info=exc)
        self.record(CaseOutcome(case_id, FAILED, str(exc) or type(exc).__name__))

    def record(self, outcome: CaseOutcome) -> None:
        self.report.outcomes.append(outcome)
        if self.listener is not None:
            self.listener.case_finished(outcome)

    def predict(self, case: InputCase, ready: Future[tuple[PreparedCase, float]],
                writer: ThreadPoolExecutor) -> None:
        """Network, resampling back and probabilities here; segmentation to the writer."""
        if self.listener is not None:
            self.listener.case_started(case.case_id)
        try:
            prepared, seconds = ready.result()
            self.report.timings["read_preprocess"] += seconds
            started = time.perf_counter()
            probabilities = self.model.predict_probabilities(
                prepared, self.listener.windows if self.listener is not None else None)
            resampling = time.perf_counter()
            self.report.timings["network"] += resampling - started
            labels = self.model.segmentation(probabilities, prepared, postprocess=False)
            paths = output_paths(self.report.output_dir, case.case_id,
                                 self.model.spec.file_ending)
            if self.options.save_probabilities:
                _write_probabilities(self.model, probabilities, prepared, *paths[1:])
            del probabilities
            self.report.timings["resample"] += time.perf_counter() - resampling
        except Exception as exc:  # one bad case must not stop the others
            self.fail(case.case_id, exc)
            return
        future = writer.submit(_write_segmentation, self.model, labels,
                               prepared.properties.geometry, paths[0])
        self.writes.append((case.case_id, future))

    def finish_writes(self, keep: int) -> None:
        """Collect finished writes, oldest first, leaving at most ``keep`` in flight."""
        while len(self.writes) > keep:
            case_id, future = self.writes.pop(0)
            try:
                self.report.timings["write"] += future.result()
            except Exception as exc:
                self.fail(case_id, exc)
                continue
            self.record(CaseOutcome(case_id, WRITTEN))


def predict_cases(model: SegmentationModel, cases: Sequence[InputCase], output_dir: Path,
                  options: FolderOptions = FolderOptions(),
                  listener: PredictionListener | None = None) -> PredictionReport:
    """Predict ``cases`` into ``output_dir`` (see the module notes on overlap and failures).

    Returns:
        The report, outcomes in the order of ``cases`` (the listener hears them as they come).
    """
    run = _FolderRun(model, Path(output_dir), options, listener)
    run.report.output_dir.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_temporaries(run.report.output_dir)
    if removed:
        logger.info("removed %d temporary file(s) of an interrupted run from %s", removed,
                    run.report.output_dir)
    todo = []
    for case in cases:
        paths = output_paths(run.report.output_dir, case.case_id, model.spec.file_ending)
        if not options.overwrite and _is_done(paths, options.save_probabilities):
            run.record(CaseOutcome(case.case_id, SKIPPED, "already predicted (--overwrite "
                                                          "to redo)"))
        else:
            todo.append(case)
    with ThreadPoolExecutor(1, "swinfuse-read") as reader, \
            ThreadPoolExecutor(1, "swinfuse-write") as writer:
        upcoming = (reader.submit(_read_and_prepare, model, todo[0], options.channel_names)
                    if todo else None)
        for index, case in enumerate(todo):
            ready = upcoming
            assert ready is not None
            upcoming = (reader.submit(_read_and_prepare, model, todo[index + 1],
                                      options.channel_names)
                        if index + 1 < len(todo) else None)
            run.predict(case, ready, writer)
            run.finish_writes(keep=1)
        run.finish_writes(keep=0)
    order = {case.case_id: index for index, case in enumerate(cases)}
    run.report.outcomes.sort(key=lambda outcome: order.get(outcome.case_id, len(order)))
    return run.report
