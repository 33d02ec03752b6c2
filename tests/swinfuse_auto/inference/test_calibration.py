"""CPU precision calibration: measured once, cached per CPU, torch version, network width and
threads; a forced precision is used as asked and caches nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.inference import calibration
from swinfuse_auto.inference.calibration import (CACHE_FILE, Calibration, calibrate,
                                                 calibration_shape, time_forward)
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.factory import build_segmentation_network

ARCH = SwinArchitecture(in_channels=1, num_classes=2, feature_size=3, depths=(1, 1, 1, 1),
                        num_heads=(1, 1, 1, 1))
PATCH = (32, 32, 64)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    return build_segmentation_network(ARCH).eval()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SWINFUSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / CACHE_FILE


@pytest.fixture
def timings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A fake clock: bf16 takes 1 s, fp32 3 s; the list records each timed precision."""
    timed: list[str] = []

    def fake(network: torch.nn.Module, in_channels: int, shape: tuple[int, ...],
             device: torch.device, precision: str, repeats: int = 2) -> float:
        timed.append(precision)
        return 1.0 if precision == "bf16" else 3.0

    monkeypatch.setattr(calibration, "time_forward", fake)
    yield timed


def test_auto_measures_once_and_the_second_call_reads_the_cache(
        network: torch.nn.Module, cache: Path, timings: list[str]) -> None:
    first = calibrate(network, ARCH, PATCH, CPU, "auto")
    assert first.precision == "bf16" and "measured now" in first.reason
    assert sorted(timings) == ["bf16", "fp32"]
    stored = json.loads(cache.read_text())
    [(key, entry)] = stored.items()
    assert torch.__version__ in key and "1 threads" in key and "feature_size 3" in key
    assert entry == {"precision": "bf16", "fp32_s": 3.0, "bf16_s": 1.0, "shape": "32x32x64"}

    timings.clear()
    second = calibrate(network, ARCH, PATCH, CPU, "auto")
    assert second.precision == "bf16" and "measured here before" in second.reason
    assert timings == ["bf16"]  # only the speed for the ETA, at the cached precision
    assert second.seconds_per_voxel == pytest.approx(1.0 / (32 * 32 * 64))


def test_the_decision_is_keyed_by_thread_count_and_cpu(
        network: torch.nn.Module, cache: Path, timings: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    calibrate(network, ARCH, PATCH, CPU, "auto")
    torch.set_num_threads(2)  # the autouse fixture restores 1 thread
    calibrate(network, ARCH, PATCH, CPU, "auto")
    assert sorted(timings) == ["bf16", "bf16", "fp32", "fp32"]  # measured again
    keys = sorted(json.loads(cache.read_text()))
    assert len(keys) == 2 and "1 threads" in keys[0] and "2 threads" in keys[1]
    cpu_name = keys[0].split(" | ")[0]
    assert cpu_name and cpu_name == keys[1].split(" | ")[0]


def test_auto_keeps_fp32_where_bf16_is_not_clearly_faster(
        network: torch.nn.Module, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration, "time_forward",
                        lambda *args, **kwargs: 1.0 if args[4] == "fp32" else 0.9)
    assert calibrate(network, ARCH, PATCH, CPU, "auto").precision == "fp32"  # 0.9 > 0.85 x 1.0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_forced_precision_is_used_and_nothing_is_cached(
        network: torch.nn.Module, cache: Path, timings: list[str], precision: str) -> None:
    result = calibrate(network, ARCH, PATCH, CPU, precision)
    assert result == Calibration(precision, result.seconds_per_voxel, f"{precision} as asked")
    assert timings == [precision] and not cache.exists()


def test_an_unknown_precision_is_refused(network: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match="auto, fp32, bf16.*'fp16'"):
        calibrate(network, ARCH, PATCH, CPU, "fp16")


def test_an_unwritable_cache_only_warns(network: torch.nn.Module, tmp_path: Path,
                                        timings: list[str], monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SWINFUSE_CACHE", str(blocker / "cache"))  # below a file: cannot exist
    assert calibrate(network, ARCH, PATCH, CPU, "auto").precision == "bf16"
    assert "could not cache" in caplog.text


def test_the_calibration_tile_is_small_and_valid_for_the_encoder() -> None:
    assert calibration_shape(ARCH, (64, 160, 160)) == (64, 64, 64)
    assert calibration_shape(ARCH, PATCH) == PATCH


def test_time_forward_times_a_real_pass(network: torch.nn.Module) -> None:
    seconds = time_forward(network, 1, PATCH, CPU, "bf16", repeats=1)
    assert 0 < seconds < 30
