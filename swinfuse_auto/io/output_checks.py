"""Checks around outputs: is a location writable with room to spare, and is a file finished?

Before a stage starts, :func:`check_output_location` makes sure its output can be written and,
where the size can be estimated, that the disk has room: otherwise an unwritable folder is found
only after hours of work, or (``predict``) once for every case. The estimates are rough and say
what they are based on; a location is refused only when the free space is below the estimate.

On a re-run, a stage skips what is already there; :func:`file_problem` checks that a file it is
about to skip is whole, so that the output of a killed run (a 0-byte or cut-off file) is redone
instead of trusted.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.io.nifti_scan import damage, is_nifti, voxel_count

#: Bytes per preprocessed voxel: float32 images, int8 labels.
_IMAGE_BYTES, _LABEL_BYTES = 4, 1
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}


def _size(num_bytes: float) -> str:
    if num_bytes < 1024:
        return f"{num_bytes:.0f} bytes"
    for unit in ("KB", "MB"):
        num_bytes /= 1024
        if num_bytes < 1024:
            return f"{num_bytes:.1f} {unit}"
    return f"{num_bytes / 1024:.1f} GB"


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists: where a folder to be created would go."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _write_probe_error(folder: Path) -> OSError | None:
    """Create and delete a file in ``folder``: the only honest test of writability.

    Permission bits say nothing for root, and a read-only mount or an immutable folder
    (``chattr +i``) refuses writes whatever the bits say.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=".swinfuse_write_check.", dir=folder)
    except OSError as exc:
        return exc
    os.close(fd)
    os.unlink(name)
    return None


def check_output_location(location: Path, what: str, option: str, needed_bytes: int = 0,
                          basis: str = "") -> None:
    """Refuse, with a message naming the folder and the fix, an output location that cannot be
    written or (when ``needed_bytes`` is known) lacks the free space.

    Args:
        location: the folder the stage writes into; it need not exist yet (its nearest existing
            ancestor is checked, since that is where it will be created).
        what: what the folder is, for the message ("preprocessed folder").
        option: how to choose another one ("--preprocessed DIR or SWINFUSE_PREPROCESSED").
        needed_bytes: estimated size of the outputs; 0 skips the space check.
        basis: what the estimate is based on, shown in the message.

    Raises:
        ConfigError: the location is a file, is not writable, or has too little free space.
    """
    location = Path(location)
    existing = nearest_existing(location)
    if not existing.is_dir():
        raise ConfigError(f"The {what} {location} cannot be created: {existing} is a file. "
                          f"Choose another folder with {option}.")
    problem = _write_probe_error(existing)
    if problem is not None:
        where = "" if existing == location.absolute() else \
            f" (it would be created in {existing}, which refuses new files)"
        raise ConfigError(f"Cannot write to the {what} {location}{where}: "
                          f"{problem.strerror or problem}. Make it writable (permissions, "
                          f"read-only mount, chattr +i) or choose another folder with {option}.")
    free = shutil.disk_usage(existing).free
    if needed_bytes > free:
        why = f" ({basis})" if basis else ""
        raise ConfigError(f"The {what} {location} has {_size(free)} free, but this step needs "
                          f"about {_size(needed_bytes)}{why}. Free disk space or choose another "
                          f"folder with {option}.")


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 when it does not exist): what a re-run reuses."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def voxels_of(path: Path) -> int | None:
    """Voxel count of an image file from its header; None when it is no readable NIfTI."""
    try:
        return voxel_count(path)
    except OSError:
        return None


def preprocessed_bytes(raw_dir: Path) -> int:
    """Rough size of a dataset's preprocessed cases: every image's voxels as float32 and every
    training label's as int8, on the raw grid (resampling and cropping change it somewhat).

    Files without a NIfTI header count with their size on disk.
    """
    total = 0
    for folder, per_voxel in (("imagesTr", _IMAGE_BYTES), ("imagesTs", _IMAGE_BYTES),
                              ("labelsTr", _LABEL_BYTES)):
        directory = Path(raw_dir) / folder
        files = sorted(directory.iterdir()) if directory.is_dir() else []
        for path in files:
            if path.is_file() and not path.name.startswith("."):
                voxels = voxels_of(path)
                total += voxels * per_voxel if voxels is not None else path.stat().st_size
    return total


def check_preprocessing_output(dataset: str | os.PathLike[str], raw: str | None,
                               preprocessed: str | None) -> None:
    """``plan_and_preprocess``: the dataset's preprocessed folder is writable and has room for
    the preprocessed cases (less what an earlier run already wrote there)."""
    from swinfuse_auto.paths import resolve_dataset

    location = resolve_dataset(dataset, raw=raw, preprocessed=preprocessed,
                               require=("preprocessed",))
    assert location.preprocessed_dir is not None  # guaranteed by require
    needed = preprocessed_bytes(location.raw_dir) - folder_bytes(location.preprocessed_dir)
    check_output_location(location.preprocessed_dir, "preprocessed folder",
                          "--preprocessed DIR (or SWINFUSE_PREPROCESSED)", max(needed, 0),
                          "the raw images' voxels as float32 plus the labels")


def probabilities_bytes(first_channels: Iterable[Path], num_classes: int) -> int:
    """Size of ``predict --save-probabilities``' maps: float32 per class and input voxel,
    uncompressed, so exact. (The segmentations are gzip-compressed label maps, small and of no
    predictable size, so they are not counted.)"""
    return sum((voxels_of(p) or Path(p).stat().st_size) * 4 * num_classes
               for p in first_channels)


def npy_problem(path: Path) -> str | None:
    """Why a ``.npy`` file is not whole, or None: its size must be what its header says.

    ``np.load`` of a memory map does not read the data, so a file cut short by a killed run or a
    full disk would only fail (or give garbage) later, inside a training step.
    """
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = _NPY_HEADER_READERS.get(version)
            if reader is None:
                return f"its .npy format version {version} is not one numpy.save writes"
            shape, _, dtype = reader(handle)
            expected = handle.tell() + math.prod(shape) * dtype.itemsize
            found = os.fstat(handle.fileno()).st_size
    except (ValueError, SyntaxError, EOFError) as exc:
        return f"its .npy header cannot be read ({exc})"
    if found != expected:
        return f"it holds {found} bytes but its .npy header needs {expected}"
    return None


def file_problem(path: Path) -> str | None:
    """Why an existing output cannot be trusted as finished, or None when it is whole.

    ``.npy`` files and NIfTI files are checked against their headers; any other file only has
    to be non-empty.
    """
    path = Path(path)
    if not path.is_file():
        return "it does not exist"
    if path.name.endswith(".npy"):
        return npy_problem(path)
    if is_nifti(path):
        return damage(path)
    return "it is empty" if path.stat().st_size == 0 else None
