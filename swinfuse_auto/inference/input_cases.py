"""The cases of a folder to predict, and reading each one with the checks prediction needs.

Files follow nnU-Net's imagesTs naming: ``CASE_0000.nii.gz``, ``CASE_0001.nii.gz``, ... one file
per channel. A model with one input channel also accepts a plain ``CASE.nii.gz``. Problems found
while listing (a missing or extra channel, two files for one channel) are attached to the case
instead of raised, so one bad case never stops the others; reading raises them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swinfuse_auto.errors import DatasetError
from swinfuse_auto.io import nifti_scan
from swinfuse_auto.io.image import SUPPORTED_ENDINGS, Geometry, read_image

_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_ENDINGS = sorted(SUPPORTED_ENDINGS, key=len, reverse=True)  # .nii.gz before .nii


@dataclass(frozen=True)
class InputCase:
    """One case to predict: its channel files in order, or the problem that prevents reading."""

    case_id: str
    files: tuple[Path, ...]
    problem: str | None = None


def _split_name(name: str) -> tuple[str, str] | None:
    """(stem, ending) of an image file name, None for other files."""
    for ending in _ENDINGS:
        if name.endswith(ending) and len(name) > len(ending):
            return name[: -len(ending)], ending
    return None


def _channel_problem(case_id: str, channels: dict[int, list[Path]], num_channels: int
                     ) -> str | None:
    expected = [f"{case_id}_{c:04d}" for c in range(num_channels)]
    missing = [name for c, name in enumerate(expected) if c not in channels]
    extra = sorted(c for c in channels if c >= num_channels)
    doubled = [paths for paths in channels.values() if len(paths) > 1]
    if missing:
        hint = (" (for a one-channel model a single file may also be named CASE.nii.gz)"
                if num_channels == 1 else "")
        return (f"channel file(s) {', '.join(missing)} are missing; the model takes "
                f"{num_channels} channel(s), {', '.join(expected)}{hint}.")
    if extra:
        return (f"has channel(s) {', '.join(f'{c:04d}' for c in extra)} but the model takes "
                f"{num_channels} channel(s) ({', '.join(expected)}); remove the extra files.")
    if doubled:
        names = ", ".join(p.name for p in doubled[0])
        return f"several files for one channel ({names}); keep one of them."
    return None


def find_input_cases(folder: Path, num_channels: int) -> list[InputCase]:
    """Every case in ``folder``, sorted by id, each with its files or its problem.

    Raises:
        DatasetError: the folder does not exist or holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"The input folder {folder} does not exist; pass -i with a folder of "
                           "CASE_0000.nii.gz files (like imagesTs).")
    channel_files: dict[str, dict[int, list[Path]]] = {}
    single_files: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        split = _split_name(path.name)
        if path.name.startswith(".") or not path.is_file() or split is None:
            continue
        match = _CHANNEL.match(split[0])
        if match:
            case = channel_files.setdefault(match["case"], {})
            case.setdefault(int(match["channel"]), []).append(path)
        else:
            single_files.setdefault(split[0], []).append(path)
    if not channel_files and not single_files:
        raise DatasetError(f"{folder} holds no image files ({', '.join(SUPPORTED_ENDINGS)}); "
                           "point -i to a folder of CASE_0000.nii.gz files.")
    cases = []
    for case_id in sorted(set(channel_files) | set(single_files)):
        cases.append(_make_case(case_id, channel_files.get(case_id), single_files.get(case_id),
                                num_channels))
    return cases


def _make_case(case_id: str, channels: dict[int, list[Path]] | None,
               single: list[Path] | None, num_channels: int) -> InputCase:
    if channels and single:
        return InputCase(case_id, (), f"both {single[0].name} and channel files "
                                      f"{case_id}_XXXX exist; keep one naming scheme.")
    if single:
        if num_channels != 1:
            return InputCase(case_id, (), f"{single[0].name} is a single file but the model "
                                          f"takes {num_channels} channels; name them "
                                          f"{case_id}_0000 ... {case_id}_{num_channels - 1:04d}.")
        if len(single) > 1:
            return InputCase(case_id, (), f"several files for one case "
                                          f"({', '.join(p.name for p in single)}); keep one.")
        return InputCase(case_id, (single[0],))
    assert channels is not None
    problem = _channel_problem(case_id, channels, num_channels)
    if problem:
        return InputCase(case_id, (), problem)
    return InputCase(case_id, tuple(channels[c][0] for c in range(num_channels)))


def read_input_case(case: InputCase) -> tuple[np.ndarray, Geometry]:
    """The (C, z, y, x) float32 channels of a case and the geometry of channel 0.

    Raises:
        DatasetError: a listing problem, an unreadable or non-3D file, channels on different
            grids, or NaN/Inf voxels; the message names the case and file.
    """
    if case.problem:
        raise DatasetError(f"case {case.case_id}: {case.problem}")
    arrays, geometry = [], None
    for path in case.files:
        array, this = read_image(path, dtype=None)
        if geometry is None:
            geometry = this
        elif diffs := geometry.mismatch(this):
            raise DatasetError(f"case {case.case_id}: {path.name} differs from "
                               f"{case.files[0].name} in {', '.join(diffs)}; all channels must "
                               "share one grid. Resample them onto channel 0 first.")
        bad = _non_finite_voxels(path, array)
        if bad:
            raise DatasetError(f"case {case.case_id}: {path} has {bad} NaN/Inf voxel(s); the "
                               "network cannot predict them. Replace them (e.g. with the "
                               "background value) and re-run.")
        arrays.append(array.astype(np.float32, copy=False))
    assert geometry is not None  # a case without problem has at least one file
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays), geometry


def _non_finite_voxels(path: Path, array: np.ndarray) -> int:
    """NaN/Inf voxels of a float image, counted on disk for NIfTI.

    SimpleITK 2.x silently reads NaN and Inf NIfTI voxels as 0 (see
    :mod:`swinfuse_auto.io.nifti_scan`), so float NIfTI files are scanned byte by byte; this
    runs on the reader thread, overlapped with inference. Integer images cannot hold either.
    """
    if array.dtype.kind != "f":
        return 0
    if nifti_scan.is_nifti(path):
        found = nifti_scan.scan(path)
        return found.nan + found.inf if found is not None else 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))
