"""PredictionSettings validation, the ensemble's tile choice, the time estimate and
``predict --dry-run`` with its speed flags."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from swinfuse_auto.api import estimate_prediction, load_model
from swinfuse_auto.cli import predict
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.inference.estimate import format_seconds
from swinfuse_auto.inference.fold_ensemble import EnsemblePredictor, PredictionSettings

PATCH = (32, 32, 64)


@pytest.mark.parametrize("kwargs,message", [
    ({"tiling": "tiles"}, "tiling must be one of window, auto, got 'tiles'"),
    ({"precision": "fp16"}, "precision must be one of auto, fp32, bf16, got 'fp16'"),
    ({"memory_budget_gb": 0}, "memory_budget_gb must be positive"),
    ({"step_fraction": 0}, "step_fraction must be in"),
    ({"window_batch_size": 0}, "window_batch_size must be at least 1"),
    ({"mirror_axes": (3,)}, "mirror axes must be distinct spatial axes"),
])
def test_prediction_settings_refuse_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PredictionSettings(**kwargs)


def test_prediction_settings_default_to_windows_in_the_measured_precision() -> None:
    settings = PredictionSettings()  # tiles change the segmentation: opt-in (tiling.py notes)
    assert (settings.tiling, settings.precision, settings.mirror_axes) == ("window", "auto", None)


def _ensemble(model_dir: Path, **settings: object) -> EnsemblePredictor:
    chosen = PredictionSettings(**settings)  # type: ignore[arg-type]
    return EnsemblePredictor.from_model_dir(model_dir, [0], torch.device("cpu"), chosen)


def test_the_ensemble_tiles_within_its_memory_budget(one_channel_model: Path) -> None:
    shape = (70, 100, 200)
    windows = _ensemble(one_channel_model, tiling="window", precision="fp32").tile_grid(shape)
    assert windows.tile == PATCH
    roomy = _ensemble(one_channel_model, tiling="auto", precision="fp32", memory_budget_gb=8.0)
    whole = roomy.tile_grid((64, 96, 192))
    assert whole.tile == (64, 96, 192) and whole.count == 1  # the whole volume in one tile
    # the fewest voxels in all: two 64-voxel tiles (128) beat two 96-voxel ones (192) on y
    assert roomy.tile_grid(shape).tile == (64, 64, 128)
    assert roomy.tile_grid(shape).total_voxels < windows.total_voxels
    tight = _ensemble(one_channel_model, tiling="auto", precision="fp32",
                      memory_budget_gb=1e-4)
    assert tight.tile_grid(shape).tile == PATCH  # below one patch: the sliding window
    small = _ensemble(one_channel_model, tiling="auto", precision="fp32").tile_grid((10, 20, 30))
    assert small.tile == PATCH and small.count == 1  # padded up to the patch, as always
    assert roomy.memory_budget_bytes(shape) == 8e9
    assert 0 < _ensemble(one_channel_model).memory_budget_bytes(shape) < 1e13
    assert _ensemble(one_channel_model, memory_budget_gb=8.0).tile_grid(shape) == windows


def test_auto_mirroring_uses_the_trained_axes_and_counts_passes(one_channel_model: Path) -> None:
    ensemble = EnsemblePredictor.from_model_dir(one_channel_model, None, torch.device("cpu"))
    assert ensemble.mirror_axes == (0, 1, 2) and ensemble.passes == 2 * 8  # two folds
    assert _ensemble(one_channel_model, mirror_axes=()).passes == 1


def test_the_estimate_counts_tiles_and_passes(
        one_channel_model: Path, tmp_path: Path, write_case: Callable, volume_factory: Callable,
        grid_factory: Callable) -> None:
    shape = (41, 53, 47)
    write_case(tmp_path / "in", "odd", volume_factory(shape)[None], grid_factory(shape))
    (tmp_path / "in" / "broken.nii.gz").write_bytes(b"not an image")
    model = load_model(one_channel_model, device="cpu", tta=False, precision="fp32")
    estimate = estimate_prediction(tmp_path / "in", model)
    [case] = estimate.cases
    assert estimate.unreadable == ("broken",) and estimate.threads == 1
    assert (estimate.device, estimate.precision, estimate.folds) == ("cpu", "fp32", 2)
    grid = model.ensemble.tile_grid(case.network_shape)
    assert (case.tile, case.tiles) == (grid.tile, grid.count)
    assert case.network_seconds == pytest.approx(
        2 * grid.total_voxels * model.ensemble.calibration.seconds_per_voxel)
    assert case.raw_shape == shape and estimate.seconds == pytest.approx(case.seconds)
    text = "\n".join(estimate.lines())
    assert "1 case(s); device cpu, 1 thread(s), precision fp32 as asked; TTA off" in text
    assert "broken: header unreadable" in text and "estimated wall time" in text


@pytest.mark.parametrize("seconds,text", [(42.4, "42 s"), (185, "3 min 05 s"),
                                          (3720, "62 min 00 s"), (7500, "2 h 05 min")])
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("tiling,tile", [("window", "4 tile(s) of 32x32x64"),
                                         ("auto", "2 tile(s) of 32x64x64")])
def test_dry_run_prints_the_estimate_and_writes_nothing(
        one_channel_model: Path, tmp_path: Path, write_case: Callable, volume_factory: Callable,
        grid_factory: Callable, capsys: pytest.CaptureFixture[str], tiling: str,
        tile: str) -> None:
    shape = (40, 100, 70)  # 2.3 x 1.1 x 0.9 mm -> 31 x 73 x 42 at 3 x 1.5 x 1.5 mm
    write_case(tmp_path / "in", "case", volume_factory(shape)[None], grid_factory(shape))
    out = tmp_path / "out"
    assert predict.main(["-i", str(tmp_path / "in"), "-o", str(out), "-m",
                         str(one_channel_model), "--device", "cpu", "--dry-run", "--no-tta",
                         "--tiling", tiling, "--precision", "bf16", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "precision bf16 as asked" in printed and tile in printed
    assert "dry run: nothing predicted or written" in printed and not out.exists()
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("flag,message", [
    (["--threads", "0"], "--threads: must be at least 1, got 0"),
    (["--threads", "two"], "expected a whole number of threads, got 'two'"),
    (["--tiling", "tiles"], "invalid choice: 'tiles'"),
    (["--precision", "fp16"], "invalid choice: 'fp16'"),
])
def test_bad_speed_flags_are_usage_errors(flag: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["-i", str(tmp_path), "-o", str(tmp_path / "o"), "-d", "1", *flag])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_memory_estimate_grows_with_the_tile() -> None:
    from swinfuse_auto.networks.architecture import SwinArchitecture
    from swinfuse_auto.networks.cost_model import (estimate_inference_memory_bytes,
                                                   max_inference_tile_voxels)

    arch = SwinArchitecture(in_channels=1, num_classes=3, feature_size=12)
    budget = estimate_inference_memory_bytes(arch, (64, 256, 256), precision="bf16")
    fits = max_inference_tile_voxels(arch, budget, precision="bf16")
    assert fits == pytest.approx(math.prod((64, 256, 256)), rel=1e-6)
    assert max_inference_tile_voxels(arch, 0.0) == 0
