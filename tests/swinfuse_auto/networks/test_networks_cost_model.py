"""Cost model: agrees with the built network's size and grows with patch, feature and batch."""

from __future__ import annotations

import pytest
import torch

from swinfuse_auto.errors import PlanError
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.cost_model import (count_parameters, estimate_step_seconds_cpu,
                                               estimate_training_memory_gb)
from swinfuse_auto.networks.unetr import SwinDIMUNETR

PATCHES = [(32, 64, 64), (64, 64, 64), (64, 96, 96), (96, 96, 96), (128, 128, 128)]


@pytest.mark.parametrize("arch", [
    SwinArchitecture(1, 2, feature_size=48),
    SwinArchitecture(3, 5, feature_size=12, dim="none"),
    SwinArchitecture(2, 4, feature_size=7 * 3, dim="swin_dim_no_attention", window_size=5),
    SwinArchitecture(1, 3, feature_size=6, depths=(2, 2, 6), num_heads=(3, 6, 12)),
])
def test_parameter_formula_matches_the_network(arch: SwinArchitecture) -> None:
    with torch.device("meta"):
        built = sum(p.numel() for p in SwinDIMUNETR(arch).parameters())
    assert count_parameters(arch) == built


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_memory_is_monotonic(device: str) -> None:
    for fs in (12, 24, 48):
        arch = SwinArchitecture(1, 2, feature_size=fs)
        by_patch = [estimate_training_memory_gb(arch, p, 1, device) for p in PATCHES]
        assert by_patch == sorted(by_patch) and len(set(by_patch)) == len(PATCHES)
        by_batch = [estimate_training_memory_gb(arch, (64, 64, 64), b, device) for b in (1, 2, 4)]
        assert by_batch[0] < by_batch[1] < by_batch[2]
    by_fs = [estimate_training_memory_gb(SwinArchitecture(1, 2, feature_size=fs), (96,) * 3, 2,
                                         device) for fs in (12, 24, 48)]
    assert by_fs[0] < by_fs[1] < by_fs[2]


def test_step_time_is_monotonic() -> None:
    arch = SwinArchitecture(1, 2, feature_size=12)
    times = [estimate_step_seconds_cpu(arch, p, 1) for p in PATCHES]
    assert times == sorted(times) and times[0] > 0
    assert estimate_step_seconds_cpu(arch, (64,) * 3, 2) > times[1]
    wider = SwinArchitecture(1, 2, feature_size=24)
    assert estimate_step_seconds_cpu(wider, (64,) * 3, 1) > times[1]


def test_gpu_estimate_is_below_cpu_float32_for_big_crops() -> None:
    arch = SwinArchitecture(1, 14, feature_size=48)
    assert (estimate_training_memory_gb(arch, (96,) * 3, 2, "cuda")
            < estimate_training_memory_gb(arch, (96,) * 3, 2, "cpu"))


def test_invalid_patch_is_rejected() -> None:
    with pytest.raises(PlanError, match="multiple of 32"):
        estimate_training_memory_gb(SwinArchitecture(1, 2), (64, 64, 50), 1)
