from __future__ import annotations

import hashlib
import io
import json
import struct
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from swinfuse_auto.api import export_model, load_model
from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.models.archive import extracted_archive


class _NotAWeight:
    """A pickled object of this class must never be loaded (weights_only)."""


@pytest.fixture(scope="module")
def archive(one_channel_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(tmp_path_factory.mktemp("archive") / "model.zip", one_channel_model).path


def _rewrite(source: Path, target: Path, members: dict[str, bytes | None],
             fix_manifest: bool = False) -> Path:
    """Copy an archive, replacing (bytes) or dropping (None) members; optionally re-hash them."""
    with zipfile.ZipFile(source) as zin:
        contents = {n: zin.read(n) for n in zin.namelist()}
    for name, data in members.items():
        if data is None:
            contents.pop(name, None)
        else:
            contents[name] = data
    if fix_manifest:  # what a deliberate tamperer would do
        manifest = json.loads(contents["manifest.json"])
        manifest["files"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                             for n, d in contents.items() if n != "manifest.json"}
        contents["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(target, "w") as zout:
        for name, data in contents.items():
            zout.writestr(name, data)
    return target


def test_archive_predicts_like_the_model_folder(one_channel_model: Path, archive: Path,
                                                volume_factory: Callable) -> None:
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
    assert names == {"manifest.json", "plans.json", "dataset.json", "fold_0/checkpoint_final.pt",
                     "fold_1/checkpoint_final.pt"}
    image = volume_factory((20, 30, 26))
    from_folder = load_model(one_channel_model, device="cpu", tta=False)
    from_archive = load_model(archive, device="cpu", tta=False,
                              expected_sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    assert from_archive.folds == ["0", "1"]
    a = from_folder.predict_array(image, (2.3, 1.1, 0.9), return_probabilities=True)
    b = from_archive.predict_array(image, (2.3, 1.1, 0.9), return_probabilities=True)
    assert np.array_equal(a.segmentation, b.segmentation)
    assert np.array_equal(a.probabilities, b.probabilities)


def test_extraction_folder_is_removed(archive: Path) -> None:
    with extracted_archive(archive) as folder:
        assert (folder / "fold_0" / "checkpoint_final.pt").is_file()
    assert not folder.exists()


def _tampered(kind: str, archive: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"{kind}.zip"
    checkpoint = "fold_0/checkpoint_final.pt"
    if kind == "truncated":
        target.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    elif kind == "not_a_zip":
        target.write_bytes(b"PK\x03\x04 but nothing else")
    elif kind == "changed_member":
        data = bytearray(zipfile.ZipFile(archive).read(checkpoint))
        data[len(data) // 2] ^= 0xFF
        _rewrite(archive, target, {checkpoint: bytes(data)})
    elif kind == "extra_member":
        _rewrite(archive, target, {"fold_0/evil.py": b"import os"})
    elif kind == "path_traversal":
        _rewrite(archive, target, {"../../outside.json": b"{}"}, fix_manifest=True)
    elif kind == "missing_member":
        _rewrite(archive, target, {"fold_1/checkpoint_final.pt": None})
    elif kind == "pickled_code":
        buffer = io.BytesIO()
        torch.save({"meta_json": "{}", "model": _NotAWeight()}, buffer)
        _rewrite(archive, target, {checkpoint: buffer.getvalue()}, fix_manifest=True)
    return target


@pytest.mark.parametrize("kind, match", [
    ("truncated", "truncated or corrupt"),
    ("not_a_zip", "does not end with a zip directory"),
    ("changed_member", "SHA-256 of fold_0/checkpoint_final.pt does not match"),
    ("extra_member", "unexpected member"),
    ("path_traversal", "unexpected member"),
    ("missing_member", "missing or not listed"),
    ("pickled_code", "cannot be loaded safely"),
])
def test_damaged_or_tampered_archives_are_refused(kind: str, match: str, archive: Path,
                                                  tmp_path: Path) -> None:
    bad = _tampered(kind, archive, tmp_path)
    before = set(Path(tempfile.gettempdir()).glob("swinfuse_model_*"))
    with pytest.raises(CheckpointError, match=match):
        load_model(bad, device="cpu")
    assert set(Path(tempfile.gettempdir()).glob("swinfuse_model_*")) == before  # cleaned up
    assert not (tmp_path.parent / "outside.json").exists()


def test_wrong_published_digest_is_refused(archive: Path) -> None:
    with pytest.raises(CheckpointError, match="expected SHA-256"):
        load_model(archive, device="cpu", expected_sha256="0" * 64)


def test_export_needs_finished_folds(one_channel_model: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"fold\(s\) 3"):
        export_model(tmp_path / "m.zip", one_channel_model, folds=[3])
    assert not (tmp_path / "m.zip").exists()
    info = export_model(tmp_path / "m.zip", one_channel_model, folds=[1])
    assert info.folds == ("1",) and load_model(info.path, device="cpu").folds == ["1"]


def _flip(data: bytes, offset: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 0xFF
    return bytes(damaged)


def _header_end(data: bytes, info: zipfile.ZipInfo) -> int:
    """Where a member's data starts: after its local header, file name and extra field."""
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:
                                                          info.header_offset + 30])
    return info.header_offset + 30 + name_length + extra_length


@pytest.fixture(scope="module")
def small_archive(one_channel_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fold only: extraction of each of the hundreds of damaged copies stays cheap."""
    return export_model(tmp_path_factory.mktemp("small") / "model.zip", one_channel_model,
                        folds=[0]).path


def test_every_byte_flip_in_the_manifest_data_is_refused(small_archive: Path,
                                                         tmp_path: Path) -> None:
    """Flipped bits in the deflated manifest made zipfile raise zlib.error, uncaught. Every flip
    must be refused with the archive's own message, except where the flip only touches the
    bits after the stream's last code: then the CRC-checked manifest is byte for byte the
    original one, and nothing is damaged."""
    data = small_archive.read_bytes()
    info = zipfile.ZipFile(small_archive).getinfo("manifest.json")
    manifest = zipfile.ZipFile(small_archive).read("manifest.json")
    start = _header_end(data, info)
    assert info.compress_type == zipfile.ZIP_DEFLATED and info.compress_size > 100
    bad = tmp_path / "bad.zip"
    intact = []
    for offset in range(start, start + info.compress_size):
        bad.write_bytes(_flip(data, offset))
        try:
            with extracted_archive(bad):
                intact.append(offset)
        except CheckpointError as exc:
            assert "truncated or corrupt" in str(exc) and str(bad) in str(exc)
    for offset in intact:
        bad.write_bytes(_flip(data, offset))
        assert zipfile.ZipFile(bad).read("manifest.json") == manifest
    assert len(intact) <= 2


def test_byte_flips_in_zip_headers_are_refused_or_harmless(small_archive: Path,
                                                           tmp_path: Path) -> None:
    """Every offset of every local header, the central directory and its end record: a flip is
    refused with CheckpointError, never another exception, or (a timestamp, a version field)
    changes nothing that is extracted."""
    data = small_archive.read_bytes()
    infos = zipfile.ZipFile(small_archive).infolist()
    offsets = [o for i in infos for o in range(i.header_offset, _header_end(data, i))]
    offsets += range(infos[-1].header_offset + infos[-1].compress_size + 30, len(data))
    bad = tmp_path / "bad.zip"
    refused = 0
    for offset in sorted(set(offsets)):
        bad.write_bytes(_flip(data, offset))
        try:
            with extracted_archive(bad) as folder:
                assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.*")) == \
                    sorted(i.filename for i in infos if i.filename != "manifest.json")
        except CheckpointError:
            refused += 1
    assert refused > len(offsets) // 2


def test_refused_checkpoint_names_the_archive_not_the_extraction_folder(
        archive: Path, tmp_path: Path) -> None:
    bad = _tampered("pickled_code", archive, tmp_path)
    with pytest.raises(CheckpointError) as caught:
        load_model(bad, device="cpu")
    message = str(caught.value)
    assert f"{bad} (member fold_0/checkpoint_final.pt) cannot be loaded safely" in message
    assert "swinfuse_model_" not in message and tempfile.gettempdir() not in message.replace(
        str(tmp_path), "")
