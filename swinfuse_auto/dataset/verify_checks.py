"""Per-case checks of dataset verification, run in worker processes.

Everything here is a top-level function over plain, picklable values so that a spawned worker can
run it. Checks return :class:`Issue` records instead of raising: the user should get every
problem of the dataset from one run rather than fix, rerun, fix. Nothing here writes to the raw
folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from swinfuse_auto.io import nifti_scan
from swinfuse_auto.io.image import SUPPORTED_ENDINGS, Geometry

ERROR = "error"
WARNING = "warning"
_MAX_LISTED_VALUES = 10
_COUNT_CHUNK = 1 << 22


@dataclass(frozen=True)
class Issue:
    """One problem of the raw dataset.

    ``check`` is a stable id (``"geometry_mismatch"``, ``"nan_inf"``, ...) so that callers can
    count, filter or re-grade issues; ``file`` is relative to the dataset folder.
    """

    severity: str
    check: str
    case_id: str | None
    file: str | None
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(frozen=True)
class CaseJob:
    """What a worker needs to check one case; paths are relative to ``raw_dir``."""

    raw_dir: str
    case_id: str
    image_folder: str
    label_folder: str
    images: tuple[str | None, ...]
    label: str | None
    file_ending: str
    labels: tuple[tuple[str, int], ...]
    full: bool
    training: bool


@dataclass(frozen=True)
class CaseResult:
    """Issues of one case, plus the label classes its label file holds (None if not read)."""

    issues: tuple[Issue, ...]
    label_values: frozenset[int] | None = None


def check_case(job: CaseJob) -> CaseResult:
    """Run every check that concerns one case: files present, headers, grids, voxel values."""
    if all(path is None for path in job.images):
        return CaseResult((_orphan_label(job),))
    issues = _missing_files(job)
    geometries: dict[str, Geometry] = {}
    for rel in [p for p in job.images if p is not None] + ([job.label] if job.label else []):
        geometry, issue = _read_header(job, rel)
        if issue is not None:
            issues.append(issue)
        else:
            geometries[rel] = geometry  # type: ignore[assignment]
    issues += _geometry_issues(job, geometries)
    label_values = None
    if job.full:
        more, label_values = _voxel_issues(job, geometries)
        issues += more
    return CaseResult(tuple(issues), label_values)


def _orphan_label(job: CaseJob) -> Issue:
    # A test label without its image is harmless for training, so only warn there.
    expected = f"{job.image_folder}/{job.case_id}_0000{job.file_ending}"
    return Issue(ERROR if job.training else WARNING, "orphan_label", job.case_id, job.label,
                 f"case {job.case_id}: the label {job.label} has no image; expected {expected} "
                 f"(and one file per channel in channel_names). Add the image files or remove "
                 f"the label file.")


def _missing_files(job: CaseJob) -> list[Issue]:
    issues = []
    for channel, path in enumerate(job.images):
        if path is not None:
            continue
        expected = f"{job.image_folder}/{job.case_id}_{channel:04d}{job.file_ending}"
        present = [p for p in job.images if p is not None]
        issues.append(Issue(
            ERROR, "missing_channel", job.case_id, expected,
            f"case {job.case_id}: channel {channel} file {expected} is missing; dataset.json "
            f"channel_names lists {len(job.images)} channels but only {', '.join(present)} "
            f"exist. Add the file, or remove the channel from channel_names if no case has it."))
    if job.training and job.label is None:
        expected = f"{job.label_folder}/{job.case_id}{job.file_ending}"
        issues.append(Issue(
            ERROR, "missing_label", job.case_id, expected,
            f"case {job.case_id}: the label file {expected} is missing. Add the label, or move "
            f"the case's images to imagesTs if it is unlabelled."))
    return issues


def _read_header(job: CaseJob, rel: str) -> tuple[Geometry | None, Issue | None]:
    """Header-only read, so that the cheap verification stays cheap on large datasets."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(Path(job.raw_dir) / rel))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        return None, _unreadable(job, rel, exc)
    size = tuple(reader.GetSize())
    if reader.GetDimension() != 3:
        if rel == job.label:
            fix = "Save the label as one 3D volume with one integer class per voxel."
        elif reader.GetDimension() > 3:
            fix = ("Split the series into one 3D file per channel (CASE_0000, CASE_0001, ...) "
                   "and name each channel in channel_names.")
        else:
            fix = "Stack the slices into one 3D volume (this pipeline segments 3D images only)."
        return None, Issue(ERROR, "not_3d", job.case_id, rel,
                           f"case {job.case_id}: {rel} is {reader.GetDimension()}D (size "
                           f"{_size(size)}) but every image and label must be 3D. {fix}")
    if reader.GetNumberOfComponents() != 1:
        return None, Issue(ERROR, "not_scalar", job.case_id, rel,
                           f"case {job.case_id}: {rel} has {reader.GetNumberOfComponents()} "
                           f"components per voxel (RGB or vector image) but one is expected. "
                           f"Save each component as its own scalar channel file.")
    problem = nifti_scan.truncation(Path(job.raw_dir) / rel)
    if problem:
        return None, _truncated(job, rel, problem)
    return Geometry(size, tuple(reader.GetSpacing()),  # type: ignore[arg-type]
                    tuple(reader.GetOrigin()), tuple(reader.GetDirection())), None


def _truncated(job: CaseJob, rel: str, problem: str) -> Issue:
    return Issue(ERROR, "unreadable", job.case_id, rel,
                 f"case {job.case_id}: {rel} is truncated or corrupt: {problem}. SimpleITK would "
                 f"read it without an error and fill the missing voxels with garbage. Copy the "
                 f"file again or re-export it from its source.")


def _unreadable(job: CaseJob, rel: str, exc: Exception) -> Issue:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[-1] if lines else "unknown error"
    return Issue(ERROR, "unreadable", job.case_id, rel,
                 f"case {job.case_id}: {rel} could not be read ({reason}). The file is corrupt, "
                 f"truncated or not a supported image ({', '.join(SUPPORTED_ENDINGS)}); re-export "
                 f"or re-copy it.")


def _geometry_issues(job: CaseJob, geometries: dict[str, Geometry]) -> list[Issue]:
    """Compare every channel and the label with the first readable channel."""
    channels = [p for p in job.images if p is not None and p in geometries]
    if not channels:
        return []
    reference = channels[0]
    others = channels[1:] + ([job.label] if job.label in geometries else [])
    issues = []
    for other in others:
        diffs = geometries[reference].mismatch(geometries[other])
        if diffs:
            issues.append(_mismatch_issue(job, reference, other, geometries, diffs))
    return issues


def _mismatch_issue(job: CaseJob, reference: str, other: str,
                    geometries: dict[str, Geometry], diffs: list[str]) -> Issue:
    ref, found = geometries[reference], geometries[other]
    details = "; ".join(f"{prop} found {_property(found, prop)}, expected "
                        f"{_property(ref, prop)}" for prop in diffs)
    if other != job.label:
        fix = (f"Register or resample the channel onto the grid of {reference} (e.g. "
               f"SimpleITK.Resample(channel, reference, sitk.Transform(), sitk.sitkLinear)) "
               f"or fix the header if only the header is wrong.")
    elif "shape" in diffs:
        fix = ("Resample the label onto the image grid with nearest-neighbour interpolation "
               "(SimpleITK.Resample(label, image, sitk.Transform(), sitk.sitkNearestNeighbor)).")
    else:
        fix = ("If the voxels line up and only the header is wrong, copy the image header onto "
               "the label (label.CopyInformation(image) in SimpleITK); otherwise resample the "
               "label onto the image grid (SimpleITK.Resample(label, image, sitk.Transform(), "
               "sitk.sitkNearestNeighbor)).")
    return Issue(ERROR, "geometry_mismatch", job.case_id, other,
                 f"case {job.case_id}: {other} is not on the voxel grid of {reference} "
                 f"({details}). {fix}")


def _property(geometry: Geometry, prop: str) -> str:
    if prop == "shape":
        return f"size (x, y, z) {_size(geometry.size)}"
    if prop == "direction":
        return f"({_numbers(geometry.direction)})"
    values = geometry.spacing if prop == "spacing" else geometry.origin
    return f"(x, y, z) ({_numbers(values)}) mm"


def _size(size: tuple[int, ...]) -> str:
    return " x ".join(str(v) for v in size)


def _numbers(values: tuple[float, ...] | list[float]) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


def _voxel_issues(job: CaseJob, geometries: dict[str, Geometry]
                  ) -> tuple[list[Issue], frozenset[int] | None]:
    issues: list[Issue] = []
    for rel in [p for p in job.images if p is not None and p in geometries]:
        values, problems = _read_voxels(job, rel)
        issues += problems
        if values is not None:
            issues += _empty_image(job, rel, values)
    if job.label not in geometries:
        return issues, None
    values, problems = _read_voxels(job, job.label)  # type: ignore[arg-type]
    if values is None:
        return issues + problems, None
    more, label_values = label_value_issues(job.case_id, job.label,  # type: ignore[arg-type]
                                            values, dict(job.labels))
    return issues + problems + more, label_values


def _read_voxels(job: CaseJob, rel: str) -> tuple[np.ndarray | None, list[Issue]]:
    """The finite voxel values of a file, plus its unreadable or NaN/Inf issue if any."""
    path = Path(job.raw_dir) / rel
    scanned = nifti_scan.scan(path)
    if scanned is not None and scanned.problem:
        return None, [_truncated(job, rel, scanned.problem)]
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        return None, [_unreadable(job, rel, exc)]
    array = sitk.GetArrayFromImage(image)
    finite = array.ravel()
    if np.issubdtype(array.dtype, np.floating):
        finite = finite[np.isfinite(finite)]
    nan, inf = non_finite_counts(path, array, scanned)
    if not nan + inf:
        return finite, []
    return finite, [non_finite_issue(ERROR, job.case_id, rel, nan, inf, array.size)]


def non_finite_counts(path: Path, array: np.ndarray,
                      scanned: nifti_scan.NiftiScan | None = None) -> tuple[int, int]:
    """(NaN, infinite) voxels of the file ``path``, whose voxels were read into ``array``.

    SimpleITK has already turned NaN and Inf of a NIfTI file into 0 in ``array``, so those are
    counted on the bytes on disk (``scanned``, when the caller has scanned the file already).
    Integer voxels cannot be NaN, so such files are not scanned at all.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return 0, 0
    if scanned is None and nifti_scan.is_nifti(path):
        scanned = nifti_scan.scan(path)
    if scanned is not None:
        return scanned.nan, scanned.inf
    return int(np.count_nonzero(np.isnan(array))), int(np.count_nonzero(np.isinf(array)))


def non_finite_issue(severity: str, case_id: str, rel: str, nan: int, inf: int,
                     size: int) -> Issue:
    """The ``nan_inf`` issue: an error for verification, a warning where reading goes on."""
    consequence = ("SimpleITK silently reads them from NIfTI as 0" if severity == ERROR else
                   "they are read as 0 for now, which shifts the intensity statistics")
    return Issue(
        severity, "nan_inf", case_id, rel,
        f"case {case_id}: {rel} contains {nan} NaN and {inf} infinite voxels (of {size}); every "
        f"voxel must be a finite number ({consequence}). Replace them (e.g. numpy.nan_to_num "
        f"with the background value) and save the file again.")


def _empty_image(job: CaseJob, rel: str, values: np.ndarray) -> list[Issue]:
    if values.size == 0:
        found = "has no finite voxel"
    elif values.min() == values.max():
        found = f"is constant (every voxel is {values[0]:.6g})"
    else:
        return []
    return [Issue(
        ERROR, "empty_image", job.case_id, rel,
        f"case {job.case_id}: {rel} {found}; an image without contrast cannot be normalised or "
        f"segmented. Check the export (blank series, wrong file) and replace the file, or remove "
        f"the case.")]


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; counting is much faster than sorting for small label ranges.

    Counted a chunk at a time: ``np.bincount`` copies its input to int64, which for a whole
    512^3 label would be a gigabyte in every worker.
    """
    if values.size == 0:
        return values
    low, high = values.min(), values.max()
    if low < 0 or high >= 2**16 or not (np.issubdtype(values.dtype, np.integer)
                                        or np.array_equal(np.rint(values), values)):
        return np.unique(values)
    counts = np.zeros(int(high) + 1, dtype=np.int64)
    for start in range(0, values.size, _COUNT_CHUNK):
        chunk = values[start: start + _COUNT_CHUNK].astype(np.int64)
        counts += np.bincount(chunk, minlength=counts.size)
    return np.flatnonzero(counts)


def label_value_issues(case_id: str, rel: str, finite: np.ndarray,
                       labels: Mapping[str, int]) -> tuple[list[Issue], frozenset[int]]:
    """Errors for fractional values and values that ``labels`` (dataset.json) does not define.

    Args:
        finite: the finite voxel values of the label file (any shape, any numeric type).
        labels: the classes of dataset.json, name -> value.

    Returns:
        The issues, and the defined classes that occur.
    """
    issues = []
    values = _unique(finite.ravel())
    fractional = values[values != np.rint(values)]
    if fractional.size:
        issues.append(Issue(
            ERROR, "non_integer_label", case_id, rel,
            f"case {case_id}: {rel} holds {fractional.size} non-integer values (e.g. "
            f"{_numbers(list(fractional[:_MAX_LISTED_VALUES]))}); a label must hold one integer "
            f"class per voxel. If it was resampled, redo that with nearest-neighbour "
            f"interpolation, and save it with an integer type (e.g. uint8)."))
    found = {int(v) for v in values[values == np.rint(values)]}
    allowed = dict(labels)
    unexpected = sorted(found - set(allowed.values()))
    if unexpected:
        shown = ", ".join(str(v) for v in unexpected[:_MAX_LISTED_VALUES])
        hidden = len(unexpected) - _MAX_LISTED_VALUES
        more = f" and {hidden} more" if hidden > 0 else ""
        defined = ", ".join(f"{name}={value}" for name, value
                            in sorted(labels.items(), key=lambda item: item[1]))
        issues.append(Issue(
            ERROR, "unexpected_label", case_id, rel,
            f"case {case_id}: {rel} contains label value(s) {shown}{more} that dataset.json "
            f"does not define; allowed are {defined}. Add the classes to 'labels' in "
            f"dataset.json (values consecutive from 0) or correct the label file."))
    return issues, frozenset(found & set(allowed.values()))
