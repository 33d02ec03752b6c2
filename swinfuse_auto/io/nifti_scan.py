"""Raw checks of NIfTI files for the two defects that SimpleITK hides.

SimpleITK 2.x (ITK 5) reads a truncated ``.nii.gz`` without an error, leaving the missing voxels
as uninitialised memory, and replaces every NaN and Inf voxel of a NIfTI file by 0 on reading
(``nifti_read_buffer``; fixed only in ITK 6, InsightSoftwareConsortium/ITK#6683). Both are silent
data corruption, so dataset verification looks at the bytes on disk itself: the header says how
many bytes the file must hold and which voxel type they are.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CHUNK = 1 << 22
_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of real floating-point voxels


@dataclass(frozen=True)
class _Header:
    vox_offset: int
    voxels: int
    bytes_per_voxel: int
    dtype: np.dtype | None  # set for floating-point voxels, whose values may be non-finite

    @property
    def expected_bytes(self) -> int:
        return self.vox_offset + self.voxels * self.bytes_per_voxel


@dataclass(frozen=True)
class NiftiScan:
    """What a full pass over a NIfTI file found."""

    expected_bytes: int
    found_bytes: int
    stream_complete: bool
    nan: int
    inf: int

    @property
    def problem(self) -> str | None:
        """Why the file is incomplete or corrupt, or None when it is whole."""
        if not self.stream_complete:
            return (f"the gzip stream is corrupt or ends early, after {self.found_bytes} of "
                    f"{self.expected_bytes} bytes")
        if self.found_bytes < self.expected_bytes:
            return f"it holds {self.found_bytes} of the {self.expected_bytes} bytes its header needs"
        return None


def is_nifti(path: Path) -> bool:
    return str(path).endswith((".nii", ".nii.gz"))


def _first_bytes(path: Path, count: int) -> bytes:
    """Up to ``count`` leading (decompressed) bytes; fewer, not an error, when the file is short."""
    with open(path, "rb") as handle:
        if not str(path).endswith(".gz"):
            return handle.read(count)
        try:
            return zlib.decompressobj(31).decompress(handle.read(1 << 16), count)
        except zlib.error:
            return b""


def _read_header(path: Path) -> _Header | None:
    """The fields that fix the file size; None when the bytes are no NIfTI-1/2 header."""
    raw = _first_bytes(path, 540)
    for order in "<>":
        if len(raw) >= 348 and struct.unpack(order + "i", raw[:4])[0] == 348:
            dims = struct.unpack(order + "8h", raw[40:56])
            datatype, bitpix = struct.unpack(order + "2h", raw[70:74])
            offset = max(int(struct.unpack(order + "f", raw[108:112])[0]), 352)
            break
        if len(raw) >= 540 and struct.unpack(order + "i", raw[:4])[0] == 540:
            datatype, bitpix = struct.unpack(order + "2h", raw[12:16])
            dims = struct.unpack(order + "8q", raw[16:80])
            offset = max(struct.unpack(order + "q", raw[168:176])[0], 544)
            break
    else:
        return None
    if not 1 <= dims[0] <= 7 or bitpix <= 0 or bitpix % 8:
        return None
    voxels = int(np.prod([max(int(d), 1) for d in dims[1: dims[0] + 1]], dtype=np.int64))
    dtype = np.dtype(order + _FLOAT_TYPES[datatype]) if datatype in _FLOAT_TYPES else None
    return _Header(offset, voxels, bitpix // 8, dtype)


def voxel_count(path: Path) -> int | None:
    """Voxels a NIfTI header declares (all volumes), or None for other files and bad headers.

    Read from the header alone, so sizes can be estimated without decompressing any data.
    """
    header = _read_header(path) if is_nifti(path) else None
    return None if header is None else header.voxels


def damage(path: Path) -> str | None:
    """Why a NIfTI file cannot be trusted as a finished output, or None when it can.

    :func:`truncation` passes files without a parsable header (it leaves those to the reader's
    own error), but a 0-byte or cut-off output left by a killed run has exactly that, so here a
    missing header counts as damage too.
    """
    if is_nifti(path) and _read_header(path) is None:
        return "its NIfTI header cannot be read: the file is empty, cut short or not NIfTI"
    return truncation(path)


def truncation(path: Path) -> str | None:
    """Cheap completeness check: why ``path`` is truncated, or None.

    Reads the header and, for gzip, the size the trailer records; only when that disagrees
    (also the case for multi-member gzip files) is the whole stream decompressed to be sure.
    """
    header = _read_header(path) if is_nifti(path) else None
    if header is None:
        return None
    if not str(path).endswith(".gz"):
        size = Path(path).stat().st_size
        if size >= header.expected_bytes:
            return None
        return f"it holds {size} of the {header.expected_bytes} bytes its header needs"
    with open(path, "rb") as handle:
        handle.seek(-4, 2)
        recorded = struct.unpack("<I", handle.read(4))[0]
    if recorded == header.expected_bytes % 2**32:
        return None
    found = scan(path)
    return found.problem if found is not None else None


def _decompressed(path: Path) -> Iterator[tuple[bytes, bool]]:
    """Decompressed chunks, each with whether the stream so far ended cleanly."""
    with open(path, "rb") as handle:
        if not str(path).endswith(".gz"):
            while block := handle.read(_CHUNK):
                yield block, True
            return
        inflater = zlib.decompressobj(31)
        try:
            while block := handle.read(_CHUNK):
                yield inflater.decompress(block), inflater.eof
                # Concatenated gzip members (bgzip, appending writers); zero padding ends it.
                while inflater.eof and inflater.unused_data.strip(b"\0"):
                    rest, inflater = inflater.unused_data, zlib.decompressobj(31)
                    yield inflater.decompress(rest), inflater.eof
        except zlib.error:
            yield b"", False
            return
        yield b"", inflater.eof


def scan(path: Path) -> NiftiScan | None:
    """Read every byte of a NIfTI file: completeness plus NaN/Inf counts of float voxels.

    Returns None for files that are not NIfTI or whose header cannot be parsed.
    """
    header = _read_header(path) if is_nifti(path) else None
    if header is None:
        return None
    begin = header.vox_offset
    end = header.expected_bytes
    position, nan, inf, carry, complete = 0, 0, 0, b"", True
    for block, complete in _decompressed(path):
        start, stop = max(0, begin - position), min(len(block), end - position)
        position += len(block)
        if header.dtype is None or start >= stop:
            continue
        data = carry + block[start:stop]
        usable = len(data) - len(data) % header.bytes_per_voxel
        values = np.frombuffer(data, header.dtype, count=usable // header.bytes_per_voxel)
        nan += int(np.count_nonzero(np.isnan(values)))
        inf += int(np.count_nonzero(np.isinf(values)))
        carry = data[usable:]
    return NiftiScan(header.expected_bytes, position, complete, nan, inf)
