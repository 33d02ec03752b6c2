"""Reading one case's voxels, with the checks that need the voxels on the way.

Fingerprinting and preprocessing both read every case through :func:`read_case`, so NaN/Inf
voxels and label values that dataset.json does not define are found (and reported the same way)
whichever stage reads a case first; the cheap verification reads headers only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from swinfuse_auto.dataset.cases import Case
from swinfuse_auto.dataset.verify_checks import (ERROR, WARNING, Issue, label_value_issues,
                                                 non_finite_counts, non_finite_issue)
from swinfuse_auto.errors import DatasetError
from swinfuse_auto.io.image import Geometry, read_image

logger = logging.getLogger(__name__)
#: Issues quoted in full in a log or an error; the rest are counted.
LISTED_ISSUES = 5


@dataclass
class CaseArrays:
    """A case as read by :func:`read_case`.

    ``issues`` are what reading the voxels found: NaN/Inf warnings (the voxels are read as 0)
    and errors for label values that dataset.json does not define or that are not integers.
    """

    images: np.ndarray  # (C, z, y, x)
    label: np.ndarray | None  # (z, y, x) int16
    geometry: Geometry  # of channel 0, which verification has checked the others agree with
    issues: list[Issue] = field(default_factory=list)


def read_case(case: Case, dtype: type | None = np.float32,
              labels: Mapping[str, int] | None = None,
              count_non_finite: bool = True) -> CaseArrays:
    """Stack a case's channels to (C, z, y, x) ``dtype`` (None: as stored) and read its label,
    if any, as int16, checking the voxels on the way (the cheap verification reads headers only).

    Args:
        labels: dataset.json's classes; when given, label values outside them (or fractional
            ones) become error issues, since training would index past the output classes.
        count_non_finite: count NaN/Inf voxels into warning issues. Float NIfTI files are then
            read twice (SimpleITK hides NaN/Inf as 0), so callers skip it for files counted
            before. Non-finite voxels are read as 0 either way, in every file format.
    """
    issues: list[Issue] = []
    arrays = []
    for channel in range(len(case.images)):
        array, geometry, found = _read_voxels(case.case_id, case.channel_path(channel), dtype,
                                              count_non_finite)
        arrays.append(array)
        issues += found
        if channel == 0:
            first = geometry
    label = None
    if case.label is not None:
        label, _, found = _read_voxels(case.case_id, case.label, None, count_non_finite)
        issues += found
        if labels is not None:
            issues += label_value_issues(case.case_id, str(case.label), label, labels)[0]
        label = (np.rint(label) if label.dtype.kind == "f" else label).astype(np.int16)
    images = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)  # no copy for one channel
    return CaseArrays(images, label, first, issues)


def _read_voxels(case_id: str, path: Path, dtype: type | None, count_non_finite: bool
                 ) -> tuple[np.ndarray, Geometry, list[Issue]]:
    """One file's voxels as ``dtype`` with NaN/Inf as 0, plus the warning that counts them.

    Read as stored first: only a float file can hold NaN, and converting to float32 before
    looking would hide which files those are.
    """
    array, geometry = read_image(path, dtype=None)
    issues = []
    if count_non_finite:
        nan, inf = non_finite_counts(path, array)
        if nan + inf:
            issues.append(non_finite_issue(WARNING, case_id, str(path), nan, inf, array.size))
    if array.dtype.kind == "f":  # SimpleITK zeroes them in NIfTI only; do so for every format
        np.nan_to_num(array, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array, geometry, issues


def log_warnings(issues: list[Issue]) -> None:
    """Log the warnings of ``issues``: the first few in full, then how many more and where."""
    warnings = [i for i in issues if i.severity == WARNING]
    for issue in warnings[:LISTED_ISSUES]:
        logger.warning("%s: %s", issue.check, issue.message)
    if len(warnings) > LISTED_ISSUES:
        logger.warning("%d more warnings like these; plan_and_preprocess --verify lists every "
                       "one in verify_report.json", len(warnings) - LISTED_ISSUES)


def raise_for_errors(issues: list[Issue], consequence: str) -> None:
    """Raise one :class:`DatasetError` listing the errors of ``issues``, if there are any.

    Args:
        consequence: what the caller did not do because of them, for the end of the message.
    """
    errors = [i for i in issues if i.severity == ERROR]
    if not errors:
        return
    listed = " ".join(issue.message for issue in errors[:LISTED_ISSUES])
    more = (f" ... and {len(errors) - LISTED_ISSUES} more like these (plan_and_preprocess "
            "--verify lists every one in verify_report.json)." if len(errors) > LISTED_ISSUES
            else "")
    raise DatasetError(f"{len(errors)} file(s) hold voxel values that cannot be used: {listed}"
                       f"{more} {consequence}")
