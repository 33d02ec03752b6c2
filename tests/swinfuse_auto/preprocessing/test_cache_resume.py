"""A re-run of preprocessing redoes a case whose arrays a killed run or a full disk cut short."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from swinfuse_auto.api import plan_and_preprocess
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, CaseStore


@pytest.fixture(scope="module")
def preprocessed_root(example_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pre")
    plan_and_preprocess(example_raw_dir, device="cpu", preprocessed=str(root), num_processes=1)
    return root


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _cut_the_last_byte(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "data_cut_in_half": ("ct_000.npy", _cut_in_half),
    "data_one_byte_short": ("ct_001.npy", _cut_the_last_byte),
    "empty_data": ("ct_002.npy", lambda p: p.write_bytes(b"")),
    "seg_cut_in_half": ("ct_003_seg.npy", _cut_in_half),
    "empty_seg": ("ct_004_seg.npy", lambda p: p.write_bytes(b"")),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_truncated_array_is_preprocessed_again(kind: str, preprocessed_root: Path,
                                               example_raw_dir: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(preprocessed_root, tmp_path / "pre"))
    store = CaseStore(root / example_raw_dir.name / LABELLED_FOLDER)
    name, breaker = DAMAGE[kind]
    original = (store.folder / name).read_bytes()
    breaker(store.folder / name)
    result = plan_and_preprocess(example_raw_dir, device="cpu", preprocessed=str(root),
                                 num_processes=1)
    assert (result.cases_done, result.cases_skipped) == (1, 9)
    assert (store.folder / name).read_bytes() == original
    data, seg, _ = store.load(name.split(".")[0].removesuffix("_seg"))
    assert seg is not None and np.isfinite(np.asarray(data)).all()
