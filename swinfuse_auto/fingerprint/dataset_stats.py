"""The dataset fingerprint (dataset_fingerprint.json): per-case facts plus pooled channel statistics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swinfuse_auto.dataset.case_reader import log_warnings, raise_for_errors
from swinfuse_auto.dataset.cases import Case, training_cases
from swinfuse_auto.dataset.spec import DatasetSpec
from swinfuse_auto.dataset.verify_checks import Issue
from swinfuse_auto.fingerprint.case_stats import CaseFingerprint, fingerprint_case
from swinfuse_auto.io.atomic import read_json, write_json
from swinfuse_auto.parallel import parallel_map, release_freed_memory
from swinfuse_auto.progress import Progress

FINGERPRINT_VERSION = 1
#: Total foreground intensities sampled per channel over the whole dataset (nnU-Net uses 1e8;
#: percentiles of 1e7 samples are accurate to far below the HU noise level, at a tenth the RAM).
TOTAL_INTENSITY_SAMPLES = 10_000_000


@dataclass(frozen=True)
class ChannelStats:
    """Foreground intensity statistics of one channel, pooled over all training cases."""

    name: str
    modality: str
    mean: float
    std: float
    median: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float

    @classmethod
    def from_sample(cls, name: str, modality: str, sample: np.ndarray) -> ChannelStats:
        sample = sample.astype(np.float64)
        low, median, high = np.percentile(sample, [0.5, 50.0, 99.5])
        return cls(name, modality, float(sample.mean()), float(sample.std()), float(median),
                   float(sample.min()), float(sample.max()), float(low), float(high))


@dataclass(frozen=True)
class DatasetFingerprint:
    """Everything the planner reads about the data."""

    cases: tuple[CaseFingerprint, ...]
    channels: tuple[ChannelStats, ...]
    labels: dict[str, int]

    @property
    def spacings(self) -> np.ndarray:
        return np.array([c.spacing for c in self.cases], dtype=np.float64)

    @property
    def shapes_after_crop(self) -> np.ndarray:
        return np.array([c.shape_after_crop for c in self.cases], dtype=np.float64)

    @property
    def median_crop_fraction(self) -> float:
        return float(np.median([c.crop_fraction for c in self.cases]))

    def to_dict(self) -> dict:
        return {"fingerprint_version": FINGERPRINT_VERSION, "labels": self.labels,
                "channels": [vars(c) for c in self.channels],
                "cases": [c.to_dict() for c in self.cases]}

    @classmethod
    def from_dict(cls, d: dict) -> DatasetFingerprint:
        return cls(tuple(CaseFingerprint.from_dict(c) for c in d["cases"]),
                   tuple(ChannelStats(**c) for c in d["channels"]), dict(d["labels"]))

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> DatasetFingerprint:
        return cls.from_dict(read_json(path))


def _fingerprint_one(args: tuple[Case, int, int, dict[str, int]]
                     ) -> tuple[CaseFingerprint, np.ndarray, list[Issue]]:
    case, num_samples, seed, labels = args
    result = fingerprint_case(case, num_samples, seed, labels)
    release_freed_memory()
    return result


def compute_fingerprint(raw_dir: Path, spec: DatasetSpec, num_processes: int = 1,
                        progress: Progress | None = None) -> DatasetFingerprint:
    """Fingerprint every labelled training case of ``raw_dir``.

    This reads every training voxel before anything is planned, so it is also where bad voxel
    values are caught without ``--verify``: NaN/Inf are logged with their counts (and read as
    0); label values that dataset.json does not define stop it, naming the files.

    Raises:
        DatasetError: a label file holds undefined or fractional values.
    """
    cases = [c for c in training_cases(raw_dir, spec) if c.label is not None]
    per_case = max(1, TOTAL_INTENSITY_SAMPLES // max(len(cases), 1))
    jobs = [(case, per_case, 1234 + i, dict(spec.labels)) for i, case in enumerate(cases)]
    results = parallel_map(_fingerprint_one, jobs, num_processes, "fingerprint", progress)
    results.sort(key=lambda r: r[0].case_id)
    issues = [issue for _, _, case_issues in results for issue in case_issues]
    log_warnings(issues)
    raise_for_errors(issues, f"Nothing was planned or preprocessed from {raw_dir}.")
    samples = np.concatenate([sample for _, sample, _ in results], axis=1)
    channels = tuple(ChannelStats.from_sample(name, modality.value, samples[i])
                     for i, (name, modality) in enumerate(zip(spec.channel_names, spec.modalities)))
    return DatasetFingerprint(tuple(fp for fp, _, _ in results), channels, dict(spec.labels))
