"""One-file model archives for deployment: export, verify, extract.

An archive is a zip of the model folder's parts that prediction needs::

    manifest.json              format, version, folds, and the SHA-256 and size of every member
    plans.json, dataset.json   what the folds were trained with (also embedded in each checkpoint)
    postprocessing.json        the summarize_cv decision, when it was made
    trainer_config.json        for the record, when present
    fold_X/checkpoint_final.pt one per exported fold

Before anything is used, the archive is verified: it must be a complete zip (a truncated copy
loses its central directory), hold exactly the manifest's members and nothing else, under names
from a fixed list (so no member can be written outside the extraction folder), each with the
recorded size and SHA-256. Checkpoints are then loaded with ``torch.load(weights_only=True)``, so
even an archive whose manifest was rewritten cannot run code. For end-to-end integrity against
deliberate tampering, compare the archive's own SHA-256 (printed by ``export_model``) with
``expected_sha256``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from swinfuse_auto import __version__
from swinfuse_auto.errors import CheckpointError, SwinfuseError
from swinfuse_auto.io.atomic import atomic_path
from swinfuse_auto.io.output_checks import check_output_location
from swinfuse_auto.models.fold_model import fold_checkpoints, load_fold_model
from swinfuse_auto.paths import POSTPROCESSING_FILE

ARCHIVE_FORMAT = "swinfuse_auto_model_archive"
ARCHIVE_VERSION = 1
MANIFEST = "manifest.json"
_OPTIONAL_JSON = ("plans.json", "dataset.json", POSTPROCESSING_FILE, "trainer_config.json")
_MEMBER = re.compile(r"^(manifest|plans|dataset|postprocessing|trainer_config)\.json$"
                     r"|^fold_(\d+|all)/checkpoint_final\.pt$")
_MAX_MANIFEST_BYTES = 1024**2
_CHUNK = 1024**2
_EOCD_SIZE = 22
#: What zipfile, zlib and json raise on damaged bytes: a flipped bit can land in a header (bad
#: offsets, sizes, flags, compression method), in compressed data, or in the manifest's JSON.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, TypeError, KeyError,
           NotImplementedError, RuntimeError, struct.error, OverflowError, OSError)
#: OS errors of the machine, not of the archive's bytes (writing the extracted copy).
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class ArchiveInfo:
    """What :func:`write_model_archive` wrote (the ``export_model`` command)."""

    path: Path
    sha256: str
    folds: tuple[str, ...]
    size_bytes: int


def _sha256_of_stream(stream: BinaryIO, sink: BinaryIO | None = None) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), size


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    with open(path, "rb") as stream:
        return _sha256_of_stream(stream)[0]


def _json_members(model_dir: Path, first_checkpoint: Path) -> dict[str, bytes]:
    """plans/dataset JSON from the folder, else from the checkpoint that embeds them."""
    members = {name: (model_dir / name).read_bytes() for name in _OPTIONAL_JSON
               if (model_dir / name).is_file()}
    if "plans.json" not in members or "dataset.json" not in members:
        fold = load_fold_model(first_checkpoint)
        members.setdefault("plans.json", json.dumps(fold.plan.to_dict(), indent=2).encode())
        members.setdefault("dataset.json", json.dumps(fold.dataset_json, indent=2).encode())
    return members


def write_model_archive(model_dir: Path, output: Path, folds: Sequence[int | str] | None = None
                 ) -> ArchiveInfo:
    """Write the final checkpoints of ``folds`` (default: all trained) and their context to a zip.

    Every checkpoint is loaded once first, so a broken fold fails here and not on the deployment
    machine. The archive is written atomically.

    Raises:
        CheckpointError: no trained fold, a requested fold unfinished, or an unreadable checkpoint.
    """
    model_dir, output = Path(model_dir), Path(output)
    checkpoints = fold_checkpoints(model_dir, folds)
    check_output_location(output.parent, "archive's folder", "-o ARCHIVE",
                          sum(p.stat().st_size for p in checkpoints),
                          "the fold checkpoints, stored uncompressed")
    fold_names = tuple(p.parent.name.removeprefix("fold_") for p in checkpoints)
    for path in checkpoints:
        load_fold_model(path)
    members = _json_members(model_dir, checkpoints[0])
    files: dict[str, Any] = {name: {"sha256": hashlib.sha256(data).hexdigest(),
                                    "size": len(data)} for name, data in members.items()}
    for path in checkpoints:
        files[f"{path.parent.name}/{path.name}"] = {"sha256": file_sha256(path),
                                                   "size": path.stat().st_size}
    manifest = {"format": ARCHIVE_FORMAT, "format_version": ARCHIVE_VERSION,
                "created_with": __version__, "model_folder": model_dir.name,
                "folds": list(fold_names), "files": files}
    with atomic_path(output) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2), zipfile.ZIP_DEFLATED)
        for name, data in members.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED)
        for path in checkpoints:  # already zip files: storing beats compressing
            archive.write(path, f"{path.parent.name}/{path.name}", zipfile.ZIP_STORED)
    return ArchiveInfo(output, file_sha256(output), fold_names, output.stat().st_size)


def is_model_archive(path: Path) -> bool:
    """Whether ``path`` is a file meant as an archive (a folder is a model folder)."""
    return Path(path).is_file()


def _ends_with_directory(path: Path) -> bool:
    """Whether the file ends with a zip end-of-central-directory record and no comment.

    export_model never writes a comment, so its archives end with this record. A cut-off copy
    does not, and zipfile could otherwise find the record of a checkpoint stored inside (torch
    checkpoints are zip files themselves) and read a different, inner directory.
    """
    with open(path, "rb") as stream:
        stream.seek(0, 2)
        if stream.tell() < _EOCD_SIZE:
            return False
        stream.seek(-_EOCD_SIZE, 2)
        record = stream.read(_EOCD_SIZE)
    return record[:4] == b"PK\x05\x06" and record[-2:] == b"\x00\x00"


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not _ends_with_directory(path):
        raise CheckpointError(f"{path} is truncated or corrupt (it does not end with a zip "
                              "directory). Copy it again, or re-create it with export_model.")
    return zipfile.ZipFile(path)


@contextmanager
def _refusing_damage(path: Path, scratch: Path) -> Iterator[None]:
    """Turn whatever damaged bytes make zipfile, zlib or json raise into one CheckpointError.

    Errors of this machine while writing the extracted copy to ``scratch`` (a full disk) are
    not damage and stay OS errors.
    """
    try:
        yield
    except CheckpointError:
        raise
    except _DAMAGE as exc:
        if isinstance(exc, OSError) and exc.errno in _LOCAL_ERRNOS:
            exc.filename = exc.filename or str(scratch)
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path} is truncated or corrupt: it cannot be read as a model "
                              f"archive ({type(exc).__name__}: {reason}). Copy it again, or "
                              "re-create it with export_model.") from None


def _name_archive(message: str, scratch: Path, path: Path) -> str:
    """A message about the extracted copy, rewritten to name the archive the user gave: the
    temporary folder is gone by the time the message is read."""
    named = re.sub(re.escape(str(scratch)) + r"/([\w./-]+?\.(?:pt|json))",
                   lambda match: f"{path} (member {match[1]})", message)
    return named.replace(str(scratch), str(path))


def _read_manifest(path: Path, archive: zipfile.ZipFile) -> dict[str, Any]:
    names = archive.namelist()
    bad = [n for n in names if not _MEMBER.match(n)]
    if bad or len(set(names)) != len(names):
        what = f"unexpected member(s) {bad[:3]}" if bad else "duplicate member names"
        raise CheckpointError(f"{path} has {what}; it was not written by export_model or has "
                              "been tampered with. Re-create it with export_model.")
    if MANIFEST not in names or archive.getinfo(MANIFEST).file_size > _MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{path} has no valid {MANIFEST}; it is not a swinfuse_auto "
                              "model archive. Re-create it with export_model.")
    manifest = json.loads(archive.read(MANIFEST))  # damage: see _refusing_damage
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{path}: {MANIFEST} does not describe a swinfuse_auto model "
                              "archive. Re-create it with export_model.")
    if int(manifest.get("format_version", 0)) > ARCHIVE_VERSION:
        raise CheckpointError(f"{path} was written by a newer swinfuse_auto (archive format "
                              f"{manifest['format_version']}); upgrade to use it.")
    if not all(isinstance(e, dict) and isinstance(e.get("sha256"), str)
               and isinstance(e.get("size"), int) for e in manifest["files"].values()):
        raise CheckpointError(f"{path}: {MANIFEST} lists a member without its sha256 and size; "
                              "the archive was altered. Re-create it with export_model.")
    listed, present = set(manifest["files"]), set(names) - {MANIFEST}
    if listed != present:
        raise CheckpointError(f"{path}: members {sorted(present ^ listed)} are missing or not "
                              "listed in the manifest; the archive was altered. Re-create it.")
    return manifest


def _extract_verified(path: Path, archive: zipfile.ZipFile, manifest: dict[str, Any],
                      target: Path) -> None:
    for name, entry in sorted(manifest["files"].items()):
        info = archive.getinfo(name)
        if info.file_size != entry["size"]:
            raise CheckpointError(f"{path}: {name} has {info.file_size} bytes, the manifest "
                                  f"says {entry['size']}; the archive was altered.")
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(destination, "wb") as sink:
            digest, _ = _sha256_of_stream(source, sink)  # damage: see _refusing_damage
        if digest != entry["sha256"]:
            raise CheckpointError(f"{path}: the SHA-256 of {name} does not match the manifest; "
                                  "the archive was tampered with or damaged. Re-create it.")


@contextmanager
def extracted_archive(path: Path, expected_sha256: str | None = None) -> Iterator[Path]:
    """Verify an archive and extract it to a temporary model folder, removed afterwards.

    The folder has the results layout (``fold_X/checkpoint_final.pt``, ``plans.json``, ...), so
    everything that reads a model folder reads it.

    Raises:
        CheckpointError: missing, truncated, altered or foreign archive, or a file digest other
            than ``expected_sha256``. An error of this package raised by the caller's block
            (a checkpoint refused by torch.load) is re-raised naming the archive, not the
            temporary folder.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"The model archive {path} does not exist; create it with "
                              "export_model, or pass a model folder.")
    if expected_sha256 and file_sha256(path) != expected_sha256.strip().lower():
        raise CheckpointError(f"{path} does not have the expected SHA-256 {expected_sha256}; "
                              "it is not the archive that was published. Download it again.")
    target = Path(tempfile.mkdtemp(prefix="swinfuse_model_"))
    try:
        with _refusing_damage(path, target), _open_zip(path) as archive:
            manifest = _read_manifest(path, archive)
            _extract_verified(path, archive, manifest, target)
        try:
            yield target
        except SwinfuseError as exc:
            if str(target) not in str(exc):
                raise
            raise type(exc)(_name_archive(str(exc), target, path)) from None
    finally:
        shutil.rmtree(target, ignore_errors=True)
