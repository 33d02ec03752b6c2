"""Dataset verification: every problem of a raw folder, found in one pass, before any work starts.

nnU-Net's integrity check stops at the first problem, only warns about origin and direction
mismatches (a known source of silently shifted labels), and asks the user to read the log above.
Here every check collects :class:`Issue` records, geometry mismatches are errors, and
:func:`raise_for_report` raises once with counts per check, the first few cases and the path of
a JSON report holding all of them. ``full=False`` reads headers only (cheap enough to run before
every preprocessing); ``full=True`` also reads the voxels. The raw folder is never written to.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from swinfuse_auto.dataset.cases import Case, held_out_cases, training_cases
from swinfuse_auto.dataset.spec import DatasetSpec, load_dataset_spec
from swinfuse_auto.dataset.verify_checks import (ERROR, WARNING, CaseJob, CaseResult, Issue,
                                                 check_case)
from swinfuse_auto.errors import ConfigError, DatasetError
from swinfuse_auto.io.atomic import write_json
from swinfuse_auto.io.image import SUPPORTED_ENDINGS
from swinfuse_auto.parallel import process_pool
from swinfuse_auto.progress import Progress, start_progress

__all__ = ["CHECKS", "Issue", "VerifyReport", "raise_for_report", "verify_dataset"]

logger = logging.getLogger(__name__)

#: Every check id, with what it catches. Ids are stable: reports and severity overrides use them.
CHECKS: dict[str, str] = {
    "dataset_json": "dataset.json or the dataset folder is missing, unreadable or invalid",
    "num_training": "numTraining differs from the number of training cases",
    "file_ending": "no image ends with file_ending, but images with another supported ending do",
    "missing_channel": "a case lacks the file of a channel named in channel_names",
    "extra_channel": "a channel file whose index is not in channel_names (it would be ignored)",
    "missing_label": "a training case has no label file",
    "orphan_label": "a label file has no image",
    "unexpected_file": "a file in an images/labels folder that matches no case",
    "case_channel_names": "case_channel_names names a case that does not exist",
    "unreadable": "a file cannot be read (corrupt, truncated, unsupported)",
    "not_3d": "an image or label is not 3D",
    "not_scalar": "an image or label has several components per voxel",
    "geometry_mismatch": "shape, spacing, origin or direction differ between a case's files",
    "nan_inf": "NaN or infinite voxels (full only)",
    "empty_image": "an image is constant, e.g. all zero (full only)",
    "non_integer_label": "a label holds fractional values (full only)",
    "unexpected_label": "a label holds values that dataset.json does not define (full only)",
    "absent_class": "a class of dataset.json occurs in no training label (full only)",
}
_LEVELS = ("error", "warning", "ignore")
_CHANNEL = re.compile(r"_\d{4}$")
_EXAMPLES_PER_CHECK = 3


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_dataset`: every issue, in dataset then case order."""

    issues: list[Issue]
    cases_checked: int
    full: bool
    raw_dir: Path | None = None

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == WARNING]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as written to verify_report.json."""
        return {"raw_dir": str(self.raw_dir) if self.raw_dir else None, "full": self.full,
                "cases_checked": self.cases_checked, "num_errors": len(self.errors),
                "num_warnings": len(self.warnings),
                "counts": dict(Counter(i.check for i in self.issues)),
                "issues": [i.to_dict() for i in self.issues]}


def verify_dataset(raw_dir: Path, full: bool = True, num_processes: int = 1,
                   include_test: bool = True, progress: Progress | None = None,
                   severities: Mapping[str, str] | None = None) -> VerifyReport:
    """Check a raw dataset folder and report every problem instead of stopping at the first.

    Args:
        raw_dir: the dataset folder (holding dataset.json, imagesTr, labelsTr, imagesTs).
        full: also read voxel data (NaN/Inf, constant images, label values); otherwise only
            headers are read, which is fast enough to run before every preprocessing.
        num_processes: worker processes; cases are checked in parallel.
        include_test: also check imagesTs (and labelsTs where present).
        progress: hears of every case checked (None: silent).
        severities: per check id, "error", "warning" or "ignore" instead of the default, so a
            user can accept a known quirk of their data without silencing everything.

    Returns:
        The report; use :func:`raise_for_report` to turn its errors into an exception.
    """
    raw_dir = Path(raw_dir)
    overrides = _check_overrides(severities or {})
    try:
        spec = load_dataset_spec(raw_dir)
    except DatasetError as exc:
        message = str(exc)
        if not raw_dir.is_dir():
            message = (f"{raw_dir} is not a folder. Pass the dataset folder (e.g. "
                       f"$SWINFUSE_RAW/Dataset501_Liver) holding dataset.json and imagesTr.")
        issue = Issue(ERROR, "dataset_json", None, "dataset.json", message)
        return _regrade(VerifyReport([issue], 0, full, raw_dir), overrides)
    train = training_cases(raw_dir, spec)
    test = held_out_cases(raw_dir, spec) if include_test else []
    issues = _folder_issues(raw_dir, spec, train, test, include_test)
    jobs = [_job(raw_dir, spec, case, full, True) for case in train]
    jobs += [_job(raw_dir, spec, case, full, False) for case in test]
    results = _run(jobs, num_processes, progress)
    issues += [issue for result in results for issue in result.issues]
    if full:
        issues += _absent_classes(spec, results[: len(train)])
    return _regrade(VerifyReport(issues, len(jobs), full, raw_dir), overrides)


def raise_for_report(report: VerifyReport, report_path: Path | None = None) -> None:
    """Write the report, log its warnings, and raise one :class:`DatasetError` for its errors.

    The report is written even without errors so that warnings stay visible after the log
    has scrolled away.
    """
    if report_path is not None:
        write_json(Path(report_path), report.to_dict())
    where = f" (full list: {report_path})" if report_path is not None else ""
    for check, issues in _by_check(report.warnings).items():
        for issue in issues[:_EXAMPLES_PER_CHECK]:
            logger.warning("%s: %s", check, issue.message)
        if len(issues) > _EXAMPLES_PER_CHECK:
            logger.warning("%s: %d more warnings like these%s", check,
                           len(issues) - _EXAMPLES_PER_CHECK, where)
    if report.errors:
        raise DatasetError(_error_summary(report, report_path))


def _error_summary(report: VerifyReport, report_path: Path | None) -> str:
    errors = report.errors
    cases = {i.case_id for i in errors if i.case_id is not None}
    lines = [f"Dataset verification of {report.raw_dir} found {len(errors)} error(s) in "
             f"{len(cases)} case(s) and {len(report.warnings)} warning(s), "
             f"{report.cases_checked} case(s) checked:"]
    for check, issues in _by_check(errors).items():
        lines.append(f"  {check}: {len(issues)} error(s)")
        lines += [f"    - {i.message}" for i in issues[:_EXAMPLES_PER_CHECK]]
        if len(issues) > _EXAMPLES_PER_CHECK:
            lines.append(f"    - ... and {len(issues) - _EXAMPLES_PER_CHECK} more")
    if report_path is not None:
        lines.append(f"Every issue is listed in {report_path}.")
    else:
        lines.append("Pass report_path to raise_for_report to get every issue as JSON.")
    return "\n".join(lines)


def _by_check(issues: list[Issue]) -> dict[str, list[Issue]]:
    grouped: dict[str, list[Issue]] = {}
    for issue in issues:
        grouped.setdefault(issue.check, []).append(issue)
    return grouped


def _check_overrides(severities: Mapping[str, str]) -> dict[str, str]:
    for check, level in severities.items():
        if check not in CHECKS:
            close = difflib.get_close_matches(check, CHECKS, n=1)
            hint = f"By '{check}', did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"Unknown verification check '{check}'. {hint}Available checks "
                              f"are {', '.join(CHECKS)}.")
        if level not in _LEVELS:
            raise ConfigError(f"Severity '{level}' for check '{check}' is not one of "
                              f"{', '.join(_LEVELS)}.")
    return dict(severities)


def _regrade(report: VerifyReport, overrides: dict[str, str]) -> VerifyReport:
    issues = [replace(i, severity=overrides.get(i.check, i.severity)) for i in report.issues]
    report.issues = [i for i in issues if i.severity != "ignore"]
    return report


def _job(raw_dir: Path, spec: DatasetSpec, case: Case, full: bool, training: bool) -> CaseJob:
    def rel(path: Path | None) -> str | None:
        return None if path is None else path.relative_to(raw_dir).as_posix()

    split = "Tr" if training else "Ts"
    return CaseJob(str(raw_dir), case.case_id, f"images{split}", f"labels{split}",
                   tuple(rel(p) for p in case.images), rel(case.label), spec.file_ending,
                   tuple(sorted(spec.labels.items(), key=lambda kv: kv[1])), full, training)


def _run(jobs: list[CaseJob], num_processes: int, progress: Progress | None
         ) -> list[CaseResult]:
    """Check cases, in parallel when asked; results keep the order of ``jobs``."""
    bar = start_progress(progress, "verify dataset", len(jobs), "case")
    try:
        if num_processes <= 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(check_case(job))
                bar.advance()
            return results
        # spawn (forking a process that holds SimpleITK or torch threads can deadlock), and
        # workers that exit with this process
        with process_pool(min(num_processes, len(jobs))) as pool:
            results = []
            for result in pool.map(check_case, jobs):
                results.append(result)
                bar.advance()
            return results
    finally:
        bar.close()


def _folder_issues(raw_dir: Path, spec: DatasetSpec, train: list[Case], test: list[Case],
                   include_test: bool) -> list[Issue]:
    """Checks of the dataset as a whole, which need no file to be opened."""
    with_images = [c for c in train if any(p is not None for p in c.images)]
    issues = []
    wrong_ending = None if with_images else _wrong_ending_issue(raw_dir, spec)
    if wrong_ending is not None:  # numTraining is not the problem, so do not suggest 0
        issues.append(wrong_ending)
    elif len(with_images) != spec.num_training:
        folder = raw_dir / "imagesTr"
        hint = "" if folder.is_dir() else " (the folder imagesTr does not exist)"
        issues.append(Issue(
            ERROR, "num_training", None, "dataset.json",
            f"dataset.json: numTraining is {spec.num_training} but imagesTr holds "
            f"{len(with_images)} case(s){hint}. Set numTraining to {len(with_images)} or add "
            f"the missing cases (files named CASE_0000{spec.file_ending})."))
    folders = ["imagesTr", "labelsTr"] + (["imagesTs", "labelsTs"] if include_test else [])
    for folder in folders:
        issues += _unexpected_files(raw_dir, folder, spec)
    known = {c.case_id for c in train + test}
    for case_id in sorted(set(spec.case_channel_names) - known):
        issues.append(Issue(
            WARNING, "case_channel_names", case_id, "dataset.json",
            f"dataset.json: case_channel_names names case {case_id}, which is in no images "
            f"folder. Remove the entry or add the case's files."))
    return issues


def _unexpected_files(raw_dir: Path, folder: str, spec: DatasetSpec) -> list[Issue]:
    """Files that case discovery skips: a typo in a name would otherwise drop data silently."""
    directory = raw_dir / folder
    if not directory.is_dir():
        return []
    channel = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})" + re.escape(spec.file_ending) + "$")
    issues = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        rel = f"{folder}/{path.name}"
        match = channel.match(path.name)
        if folder.startswith("images") and match and int(match["ch"]) >= spec.num_channels:
            issues.append(Issue(
                ERROR, "extra_channel", match["case"], rel,
                f"case {match['case']}: {rel} is channel {int(match['ch'])} but dataset.json "
                f"channel_names has {spec.num_channels} channel(s), so it would be ignored. "
                f"Add the channel to channel_names or move the file out of {folder}."))
        elif not (match if folder.startswith("images") else
                  path.name.endswith(spec.file_ending)):
            issues.append(_unexpected_file_issue(rel, folder, spec.file_ending))
    return issues


def _other_ending(name: str, folder: str, file_ending: str) -> str | None:
    """The supported ending other than ``file_ending`` that a case file named ``name`` has.

    None when the name would not be a case file under any ending (images need the _XXXX
    channel suffix), so a stray file is not taken for a sign of the wrong file_ending.
    """
    ending = next((e for e in SUPPORTED_ENDINGS if name.endswith(e)), None)
    if ending is None or ending == file_ending:
        return None
    if folder.startswith("images") and not _CHANNEL.search(name[: -len(ending)]):
        return None
    return ending


def _unexpected_file_issue(rel: str, folder: str, file_ending: str) -> Issue:
    pattern = "CASE_XXXX" if folder.startswith("images") else "CASE"
    ending = _other_ending(rel, folder, file_ending)
    if ending is not None:
        fix = (f"It ends with '{ending}': if the dataset's files all do, set file_ending to "
               f"'{ending}' in dataset.json; otherwise convert it to {file_ending} or move it "
               f"out of {folder}.")
    else:
        fix = f"Rename it or move it out of {folder}."
    return Issue(WARNING, "unexpected_file", None, rel,
                 f"{rel} is not used: its name does not match {pattern}{file_ending} "
                 f"(file_ending in dataset.json is '{file_ending}'). {fix}")


def _wrong_ending_issue(raw_dir: Path, spec: DatasetSpec) -> Issue | None:
    """The error for a file_ending that no image has while images of another ending exist.

    Reported instead of the numTraining mismatch it causes, whose advice ("set numTraining to
    0") would lead the user away from the real fix.
    """
    folder = raw_dir / "imagesTr"
    if not folder.is_dir():
        return None
    found = (_other_ending(path.name, "imagesTr", spec.file_ending)
             for path in sorted(folder.iterdir()))
    endings = Counter(ending for ending in found if ending is not None)
    if not endings:
        return None
    ending, count = endings.most_common(1)[0]
    return Issue(
        ERROR, "file_ending", None, "dataset.json",
        f"dataset.json: file_ending is '{spec.file_ending}' but no image in imagesTr ends with "
        f"it, while {count} image file(s) there are named CASE_XXXX{ending}. Set file_ending "
        f"to '{ending}' in dataset.json (nnU-Net v2 uses one ending for every file).")


def _absent_classes(spec: DatasetSpec, results: list[CaseResult]) -> list[Issue]:
    """Warn about classes that never occur: the network could not learn them."""
    read = [r.label_values for r in results if r.label_values is not None]
    if not read:
        return []
    present = frozenset().union(*read)
    issues = []
    for name, value in sorted(spec.labels.items(), key=lambda kv: kv[1]):
        if value != 0 and name != "ignore" and value not in present:
            issues.append(Issue(
                WARNING, "absent_class", None, "dataset.json",
                f"dataset.json: class '{name}' (value {value}) occurs in none of the "
                f"{len(read)} training label files read. Check the labels, or remove the "
                f"class from 'labels' and renumber."))
    return issues
