"""Output locations are checked before work starts; temporaries of killed runs are recognised."""

from __future__ import annotations

import errno
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.io import output_checks
from swinfuse_auto.io.atomic import atomic_path, is_temporary, remove_stale_temporaries
from swinfuse_auto.io.output_checks import check_output_location, file_problem, npy_problem


def test_too_little_free_space_is_refused_with_the_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(output_checks.shutil, "disk_usage",
                        lambda path: usage(10 * 1024**3, 9 * 1024**3, 300 * 1024**2))
    check_output_location(tmp_path / "new" / "folder", "results folder", "--results DIR",
                          200 * 1024**2)
    with pytest.raises(ConfigError) as caught:
        check_output_location(tmp_path / "new" / "folder", "results folder", "--results DIR",
                              2 * 1024**3, "three checkpoints")
    assert str(caught.value) == (
        f"The results folder {tmp_path / 'new' / 'folder'} has 300.0 MB free, but this step "
        "needs about 2.0 GB (three checkpoints). Free disk space or choose another folder with "
        "--results DIR.")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    with pytest.raises(ConfigError, match="is a file. Choose another folder with -o"):
        check_output_location(tmp_path / "out" / "sub", "output folder", "-o")


def test_read_only_folder_is_refused(tmp_path: Path,
                                     make_read_only: Callable[[Path], Path]) -> None:
    locked = make_read_only(tmp_path / "locked")
    with pytest.raises(ConfigError, match="Cannot write to the output folder .*locked"):
        check_output_location(locked, "output folder", "-o")
    assert list(locked.iterdir()) == []


def test_npy_size_is_checked_against_its_header(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((2, 3, 4), np.int16))
    whole = path.read_bytes()
    assert npy_problem(path) is None and file_problem(path) is None
    path.write_bytes(whole[:-1])
    assert npy_problem(path) == f"it holds {len(whole) - 1} bytes but its .npy header needs " \
                                f"{len(whole)}"
    path.write_bytes(whole + b"\0")
    assert npy_problem(path) is not None
    path.write_bytes(whole[:20])
    assert "header cannot be read" in str(npy_problem(path))
    assert file_problem(tmp_path / "missing.npy") == "it does not exist"


def test_temporary_names_are_ours_only() -> None:
    ours = [".case.nii.gz.k3j_x9ab.tmp.nii.gz", ".plans.json.0a1b2c3d.tmp.json",
            ".ct_002.npy.abc.tmp.npy"]
    theirs = [".notes.tmp", ".my.notes.tmp", "case.nii.gz.k3j_x9ab.tmp.nii.gz", ".hidden",
              ".case.npy.k3j_x9ab.tmp.json", "x.tmp"]
    assert all(is_temporary(Path(name)) for name in ours)
    assert not any(is_temporary(Path(name)) for name in theirs)


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    for name in (".case.nii.gz.k3j_x9ab.tmp.nii.gz", ".notes.tmp", "case.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "case.nii.gz"]


def test_an_os_error_while_writing_names_the_final_file(tmp_path: Path) -> None:
    final = tmp_path / "case.npy"
    with pytest.raises(OSError) as caught:
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.filename == str(final)
    assert list(tmp_path.iterdir()) == []
