from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from swinfuse_auto.api import load_model, predict_folder
from swinfuse_auto.errors import ConfigError, DatasetError
from swinfuse_auto.inference.input_cases import find_input_cases, read_input_case
from swinfuse_auto.inference.postprocessing import (PostprocessingDecision, apply_postprocessing,
                                                    save_postprocessing)
from swinfuse_auto.io.image import read_geometry, read_image, write_image


def _assert_same_grid(output: Path, reference: Path) -> None:
    out, ref = read_geometry(output), read_geometry(reference)
    assert out.size == ref.size
    np.testing.assert_allclose(out.spacing, ref.spacing, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out.origin, ref.origin, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out.direction, ref.direction, rtol=0, atol=1e-9)


def test_output_grid_is_the_inputs_and_api_equals_folder_output(
        one_channel_model: Path, tmp_path: Path, write_case: Callable, volume_factory: Callable,
        grid_factory: Callable) -> None:
    """Anisotropic spacing, an oblique direction, odd sizes; and one small single-file case."""
    shape = (41, 53, 47)
    image = volume_factory(shape)
    [source] = write_case(tmp_path / "in", "odd", image[None], grid_factory(shape))
    small = volume_factory((9, 14, 11), seed=1)  # smaller than the patch along every axis
    write_image(small, grid_factory((9, 14, 11), (2.0, 2.0, 4.0)), tmp_path / "in" / "tiny.nii.gz")
    model = load_model(one_channel_model, device="cpu", tta=False)
    report = predict_folder(tmp_path / "in", tmp_path / "out", model)
    assert [(o.case_id, o.status) for o in report.outcomes] == [("odd", "written"),
                                                                 ("tiny", "written")]
    _assert_same_grid(tmp_path / "out" / "odd.nii.gz", source)
    _assert_same_grid(tmp_path / "out" / "tiny.nii.gz", tmp_path / "in" / "tiny.nii.gz")
    written, _ = read_image(tmp_path / "out" / "odd.nii.gz", dtype=None)
    assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 1, 2}
    from_image = model.predict_image(sitk.ReadImage(str(source)))
    assert np.array_equal(sitk.GetArrayFromImage(from_image), written)
    assert from_image.GetDirection() == sitk.ReadImage(str(source)).GetDirection()
    spacing_zyx = read_geometry(source).spacing_zyx
    from_array = model.predict_array(image, spacing_zyx, return_probabilities=True)
    assert np.array_equal(from_array.segmentation, written)
    assert from_array.probabilities is not None and from_array.probabilities.shape == (3, *shape)


def test_bad_cases_are_reported_and_good_ones_written(
        two_channel_model: Path, tmp_path: Path, write_case: Callable, volume_factory: Callable,
        grid_factory: Callable) -> None:
    shape = (20, 30, 26)
    grid = grid_factory(shape)
    good = np.stack([volume_factory(shape), volume_factory(shape, seed=2)])
    write_case(tmp_path / "in", "a_good", good, grid)
    write_case(tmp_path / "in", "b_missing", good[:1], grid)  # channel 0001 absent
    with_nan = good.copy()
    with_nan[1, 5, 5, 5] = np.nan
    write_case(tmp_path / "in", "c_nan", with_nan, grid)
    write_case(tmp_path / "in", "d_good", good[::-1].copy(), grid)
    write_case(tmp_path / "in", "e_broken", good, grid)
    (tmp_path / "in" / "e_broken_0001.nii.gz").write_bytes(b"not an image")
    model = load_model(two_channel_model, device="cpu", tta=False)
    report = predict_folder(tmp_path / "in", tmp_path / "out", model)
    status = {o.case_id: o.status for o in report.outcomes}
    assert status == {"a_good": "written", "b_missing": "failed", "c_nan": "failed",
                      "d_good": "written", "e_broken": "failed"}
    messages = {o.case_id: o.message for o in report.failed}
    assert "b_missing_0001 are missing" in messages["b_missing"]
    assert "NaN" in messages["c_nan"] and "c_nan_0001" in messages["c_nan"]
    assert "e_broken_0001.nii.gz" in messages["e_broken"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_good.nii.gz",
                                                                    "d_good.nii.gz"]


def test_existing_outputs_are_skipped_unless_overwrite_and_probabilities(
        one_channel_model: Path, tmp_path: Path, write_case: Callable, volume_factory: Callable,
        grid_factory: Callable) -> None:
    shape = (17, 25, 21)
    write_case(tmp_path / "in", "case", volume_factory(shape)[None], grid_factory(shape))
    model = load_model(one_channel_model, folds=[1], device="cpu", tta=False)
    predict_folder(tmp_path / "in", tmp_path / "out", model)
    output = tmp_path / "out" / "case.nii.gz"
    written = output.stat().st_mtime_ns
    again = predict_folder(tmp_path / "in", tmp_path / "out", model)
    assert [o.status for o in again.outcomes] == ["skipped"]
    assert output.stat().st_mtime_ns == written
    redo = predict_folder(tmp_path / "in", tmp_path / "out", model, save_probabilities=True)
    assert [o.status for o in redo.outcomes] == ["written"]  # probabilities were missing
    probabilities = np.load(tmp_path / "out" / "case_probabilities.npy", mmap_mode="r")
    labels, _ = read_image(output, dtype=None)
    assert probabilities.shape == (3, *shape)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-5)
    assert np.array_equal(probabilities.argmax(0), labels)
    assert (tmp_path / "out" / "case_probabilities.json").exists()
    forced = predict_folder(tmp_path / "in", tmp_path / "out", model, overwrite=True)
    assert [o.status for o in forced.outcomes] == ["written"]


def test_postprocessing_decision_is_applied(
        one_channel_model: Path, tmp_path: Path, write_case: Callable, volume_factory: Callable,
        grid_factory: Callable) -> None:
    shape = (30, 40, 36)
    write_case(tmp_path / "in", "case", volume_factory(shape)[None], grid_factory(shape))
    plain = load_model(one_channel_model, folds=[0], device="cpu", tta=False)
    predict_folder(tmp_path / "in", tmp_path / "plain", plain)
    model_dir = Path(shutil.copytree(one_channel_model, tmp_path / "model"))
    decision = PostprocessingDecision((1, 2))
    save_postprocessing(model_dir, decision)
    processed = load_model(model_dir, folds=[0], device="cpu", tta=False)
    predict_folder(tmp_path / "in", tmp_path / "processed", processed)
    before, _ = read_image(tmp_path / "plain" / "case.nii.gz", dtype=None)
    after, _ = read_image(tmp_path / "processed" / "case.nii.gz", dtype=None)
    assert np.array_equal(after, apply_postprocessing(before.copy(), decision))
    assert not np.array_equal(after, before)  # the random network leaves islands to remove


def test_case_listing_problems(tmp_path: Path) -> None:
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "a_0002.nii.gz", "b.nii.gz", "c_0000.nii.gz",
                 "c.nii.gz", "d_0001.nii", "notes.txt", ".hidden_0000.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    cases = {c.case_id: c for c in find_input_cases(tmp_path, num_channels=2)}
    assert sorted(cases) == ["a", "b", "c", "d"]
    assert "0002" in cases["a"].problem and "takes 2 channel" in cases["a"].problem
    assert "single file" in cases["b"].problem
    assert "one naming scheme" in cases["c"].problem
    assert "d_0000 are missing" in cases["d"].problem
    with pytest.raises(DatasetError, match="case d: channel file"):
        read_input_case(cases["d"])
    one = {c.case_id: c for c in find_input_cases(tmp_path, num_channels=1)}
    assert one["b"].problem is None and one["b"].files == (tmp_path / "b.nii.gz",)
    with pytest.raises(DatasetError, match="does not exist"):
        find_input_cases(tmp_path / "missing", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        find_input_cases(tmp_path / "empty", 1)


def test_folder_options_are_checked_before_any_work(one_channel_model: Path,
                                                    tmp_path: Path) -> None:
    model = load_model(one_channel_model, device="cpu", tta=False)
    with pytest.raises(ConfigError, match="is the input folder"):
        predict_folder(tmp_path, tmp_path / ".", model)
    with pytest.raises(ConfigError, match="2 channel name"):
        predict_folder(tmp_path, tmp_path / "out", model, channel_names=("CT", "T1"))
