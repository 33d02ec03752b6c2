"""plan_and_preprocess end to end: round trip to the raw grid, resumption, untouched raw data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from helpers.invert import label_to_raw
from swinfuse_auto.api import plan_and_preprocess
from swinfuse_auto.dataset.cases import training_cases
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.io.image import read_image
from swinfuse_auto.preprocessing import runner
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def preprocessed(example_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("pre")
    before = _hashes(example_raw_dir)
    result = plan_and_preprocess(example_raw_dir, device="cpu", preprocessed=str(out),
                                 num_processes=1)
    assert _hashes(example_raw_dir) == before, "the raw data must never be modified"
    return result


def test_every_case_is_stored_with_its_modality(preprocessed, example_raw_dir: Path) -> None:
    labelled = CaseStore(preprocessed.preprocessed_dir / LABELLED_FOLDER)
    unlabelled = CaseStore(preprocessed.preprocessed_dir / UNLABELLED_FOLDER)
    assert labelled.case_ids() == [f"ct_{i:03d}" for i in range(6)]
    assert unlabelled.case_ids() == [f"mr_{i:03d}" for i in range(4)]
    data, seg, props = labelled.load("ct_000")
    assert data.dtype == np.float32 and data.ndim == 4 and seg is not None
    assert isinstance(data, np.memmap)
    assert props.modalities == ("CT",) and set(props.class_locations) == {1, 2, 3, 4, 5}
    mr, mr_seg, mr_props = unlabelled.load("mr_000")
    assert mr_seg is None and mr_props.modalities == ("MR",)
    assert abs(float(mr.mean())) < 0.5  # per-image z-score, not CT statistics


def test_round_trip_restores_the_raw_grid_and_labels(preprocessed, example_raw_dir: Path) -> None:
    spec = load_dataset_spec(example_raw_dir)
    store = CaseStore(preprocessed.preprocessed_dir / LABELLED_FOLDER)
    spacing = preprocessed.plan.configuration.spacing
    for case in training_cases(example_raw_dir, spec):
        label, geometry = read_image(case.label, dtype=None)
        _, seg, props = store.load(case.case_id)
        assert props.geometry.mismatch(geometry) == []
        back = label_to_raw(np.asarray(seg), props, spacing)
        assert back.shape == label.shape
        edge = ndimage.maximum_filter(label, size=3) != ndimage.minimum_filter(label, size=3)
        wrong = back != label
        assert wrong.mean() < 0.05
        assert np.all(edge[wrong]), f"{case.case_id}: a voxel moved by more than one voxel"


def test_interrupted_preprocessing_completes_on_rerun(example_raw_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    original = runner._preprocess_one
    calls = {"n": 0}

    def dies_on_third(job: runner._Job) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as a user's Ctrl-C in the middle of a case
        return original(job)

    monkeypatch.setattr(runner, "_preprocess_one", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        plan_and_preprocess(example_raw_dir, device="cpu", preprocessed=str(tmp_path),
                            num_processes=1)
    store = CaseStore(tmp_path / example_raw_dir.name / LABELLED_FOLDER)
    assert store.case_ids() == ["ct_000", "ct_001"]
    (store.folder / ".ct_002.npy.abc.tmp.npy").write_bytes(b"partial")  # a killed write
    monkeypatch.setattr(runner, "_preprocess_one", original)
    result = plan_and_preprocess(example_raw_dir, device="cpu", preprocessed=str(tmp_path),
                                 num_processes=1)
    assert result.cases_skipped == 2 and result.cases_done == 8
    assert len(store.case_ids()) == 6
    assert not [p for p in store.folder.iterdir() if p.name.startswith(".")]
