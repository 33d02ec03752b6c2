"""Raw NIfTI checks: truncation and NaN/Inf that SimpleITK would hide, without false alarms."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from swinfuse_auto.errors import DatasetError
from swinfuse_auto.io import nifti_scan
from swinfuse_auto.io.image import read_image


def _volume() -> np.ndarray:
    array = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    array[0, 0, :3] = np.nan
    array[1, 1, 1] = -np.inf
    return array


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "image.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(_volume()), str(path), useCompression=True)
    return path


def _handmade(path: Path, version: int, order: str, array: np.ndarray) -> Path:
    """A minimal NIfTI-1 or NIfTI-2 file in either byte order (SimpleITK writes only one kind)."""
    size = 348 if version == 1 else 540
    header = bytearray(size + 4)
    struct.pack_into(order + "i", header, 0, size)
    dims = (3, *array.shape[::-1], 1, 1, 1, 1)
    if version == 1:
        struct.pack_into(order + "8h", header, 40, *dims)
        struct.pack_into(order + "2h", header, 70, 16, 32)
        struct.pack_into(order + "f", header, 108, 352.0)
    else:
        struct.pack_into(order + "2h", header, 12, 16, 32)
        struct.pack_into(order + "8q", header, 16, *dims)
        struct.pack_into(order + "q", header, 168, 544)
    data = bytes(header) + array.astype(np.dtype(order + "f4")).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def test_whole_file_counts_nan_and_inf(written: Path) -> None:
    assert nifti_scan.truncation(written) is None
    scanned = nifti_scan.scan(written)
    assert scanned is not None and scanned.problem is None
    assert (scanned.nan, scanned.inf) == (3, 1)


@pytest.mark.parametrize("version, order, name", [(1, ">", "a.nii.gz"), (2, "<", "b.nii.gz"),
                                                  (2, ">", "c.nii")])
def test_handmade_headers(tmp_path: Path, version: int, order: str, name: str) -> None:
    path = _handmade(tmp_path / name, version, order, _volume())
    scanned = nifti_scan.scan(path)
    assert scanned is not None and scanned.problem is None
    assert (scanned.nan, scanned.inf) == (3, 1)
    assert nifti_scan.truncation(path) is None


@pytest.mark.parametrize("keep", [0.5, 0.15])
def test_truncated_gzip_is_found_cheaply(written: Path, keep: float) -> None:
    """Also when fewer bytes than a NIfTI-2 header remain, which SimpleITK 2.x reads anyway."""
    data = written.read_bytes()
    written.write_bytes(data[: int(len(data) * keep)])
    assert "ends early" in nifti_scan.truncation(written)  # type: ignore[operator]
    assert nifti_scan.scan(written).problem  # type: ignore[union-attr]


def test_truncated_uncompressed_file(tmp_path: Path) -> None:
    path = _handmade(tmp_path / "a.nii", 1, "<", _volume())
    path.write_bytes(path.read_bytes()[:-10])
    assert "bytes its header needs" in nifti_scan.truncation(path)  # type: ignore[operator]


def test_corrupt_middle_is_found_by_the_full_scan(written: Path) -> None:
    data = bytearray(written.read_bytes())
    data[len(data) // 2: len(data) // 2 + 16] = bytes(16)
    written.write_bytes(bytes(data))
    assert nifti_scan.scan(written).problem  # type: ignore[union-attr]


@pytest.mark.parametrize("tail", [b"", bytes(64)])
def test_multi_member_and_padded_gzip_are_whole(written: Path, tail: bytes) -> None:
    raw = gzip.decompress(written.read_bytes())
    written.write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]) + tail)
    assert nifti_scan.truncation(written) is None
    scanned = nifti_scan.scan(written)
    assert scanned.problem is None and scanned.nan == 3  # type: ignore[union-attr]


def test_other_formats_are_not_scanned(tmp_path: Path) -> None:
    path = tmp_path / "image.mha"
    sitk.WriteImage(sitk.GetImageFromArray(_volume()), str(path))
    assert nifti_scan.scan(path) is None and nifti_scan.truncation(path) is None


def test_read_image_refuses_a_truncated_file(written: Path) -> None:
    assert read_image(written)[0].shape == (6, 7, 8)
    written.write_bytes(written.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        read_image(written)
