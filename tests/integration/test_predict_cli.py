"""predict / evaluate / export_model as a user runs them, on the example dataset.

The model is untrained (random weights in the trained-model format): these tests check files,
geometry, exit codes and that the command and the API agree, not segmentation quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers.untrained import untrained_plan, write_untrained_model
from swinfuse_auto.api import load_model
from swinfuse_auto.cli import evaluate, export_model, predict
from swinfuse_auto.example_data.grid import nominal_spacing
from swinfuse_auto.io.atomic import read_json
from swinfuse_auto.io.image import read_geometry, read_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_ARCH = {"feature_size": 3, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}



@pytest.fixture(scope="module")
def results_root(example_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RESULTS/<dataset>/swin_dim_finetune__default with untrained folds 0 and 1."""
    root = tmp_path_factory.mktemp("results")
    dataset_json = read_json(example_raw_dir / "dataset.json")
    z, y, x = nominal_spacing()
    plan = untrained_plan(dataset_json, (z, 1.5 * y, 1.5 * x), (32, 32, 64), TINY_ARCH)
    write_untrained_model(root / example_raw_dir.name / "swin_dim_finetune__default", plan,
                          dataset_json, (0, 1))
    return root


@pytest.fixture
def env(example_raw_dir: Path, results_root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SWINFUSE_RAW", str(example_raw_dir.parent))
    monkeypatch.setenv("SWINFUSE_RESULTS", str(results_root))
    return example_raw_dir.name


def test_predict_then_evaluate_and_the_api_gives_the_same_labels(
        env: str, example_raw_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    images = example_raw_dir / "imagesTs"
    out = tmp_path / "out"
    assert predict.main(["-i", str(images), "-o", str(out), "-d", env, "--no-tta",
                         "--no-progress", "--device", "cpu"]) == 0
    sources = sorted(images.glob("*_0000.nii.gz"))
    assert len(sorted(out.glob("*.nii.gz"))) == len(sources) == 4
    model = load_model(dataset=env, device="cpu", tta=False)
    for source in sources:
        written = out / source.name.replace("_0000", "")
        assert read_geometry(written) == read_geometry(source)
        # dataset.json tags these cases as MR (case_channel_names); the API is told directly
        api = model.predict_image(sitk.ReadImage(str(source)), channel_names=("T1",))
        assert np.array_equal(sitk.GetArrayFromImage(api), read_image(written, dtype=None)[0])
    assert evaluate.main(["-r", str(example_raw_dir / "labelsTs"), "-p", str(out),
                          "-d", env]) == 0
    printed = capsys.readouterr().out
    assert "foreground mean" in printed and "liver" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_cases"] == 4 and set(summary["labels"]) == {"1", "2", "3", "4", "5"}


def test_bad_case_gives_exit_code_1_and_tta_changes_the_probabilities(
        env: str, example_raw_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "in"
    images.mkdir()
    shutil.copy(example_raw_dir / "imagesTs" / "mr_000_0000.nii.gz", images)
    image = sitk.ReadImage(str(images / "mr_000_0000.nii.gz"), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    array[3, 4, 5] = np.nan
    broken = sitk.GetImageFromArray(array)
    broken.CopyInformation(image)
    sitk.WriteImage(broken, str(images / "zz_nan_0000.nii.gz"))
    common = ["-i", str(images), "-d", env, "-f", "0", "--no-progress", "--save-probabilities"]
    assert predict.main([*common, "-o", str(tmp_path / "plain"), "--no-tta"]) == 1
    captured = capsys.readouterr()
    assert "failed zz_nan: case zz_nan" in captured.out and "NaN" in captured.out
    assert sorted(p.name for p in (tmp_path / "plain").glob("*.nii.gz")) == ["mr_000.nii.gz"]
    assert predict.main([*common, "-o", str(tmp_path / "tta")]) == 1
    plain = np.load(tmp_path / "plain" / "mr_000_probabilities.npy")
    tta = np.load(tmp_path / "tta" / "mr_000_probabilities.npy")
    assert plain.shape == tta.shape and not np.allclose(plain, tta, atol=1e-4)


def test_exported_archive_predicts_like_the_results_folder_and_damage_is_refused(
        env: str, example_raw_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "model.zip"
    assert export_model.main(["-d", env, "-o", str(archive)]) == 0
    digest = capsys.readouterr().out.split("sha256 ")[1].split()[0]
    images = tmp_path / "in"
    images.mkdir()
    shutil.copy(example_raw_dir / "imagesTs" / "mr_001_0000.nii.gz", images)
    common = ["-i", str(images), "--no-tta", "--no-progress"]
    assert predict.main([*common, "-o", str(tmp_path / "a"), "-d", env]) == 0
    assert predict.main([*common, "-o", str(tmp_path / "b"), "-m", str(archive),
                         "--sha256", digest]) == 0
    a = read_image(tmp_path / "a" / "mr_001.nii.gz", dtype=None)[0]
    assert np.array_equal(a, read_image(tmp_path / "b" / "mr_001.nii.gz", dtype=None)[0])
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(archive.read_bytes()[:-100])
    assert predict.main([*common, "-o", str(tmp_path / "c"), "-m", str(damaged)]) == 2
    assert "truncated or corrupt" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "c").exists()


def test_missing_model_is_a_usage_error(env: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert predict.main(["-i", str(tmp_path), "-o", str(tmp_path / "o"), "-d", env,
                         "--trainer", "nope"]) == 2
    assert "no fold has no checkpoint_final.pt" in " ".join(capsys.readouterr().err.split())
