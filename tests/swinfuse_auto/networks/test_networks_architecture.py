"""SwinArchitecture: JSON round trip, validation messages and the input-size rule."""

from __future__ import annotations

import json

import pytest

from swinfuse_auto.errors import PlanError
from swinfuse_auto.networks.architecture import SwinArchitecture


def test_round_trip_through_json() -> None:
    arch = SwinArchitecture(in_channels=2, num_classes=4, feature_size=24, dim="none",
                            drop_path_rate=0.1, gradient_checkpointing=True)
    data = json.loads(json.dumps(arch.to_dict()))
    assert data["depths"] == [2, 2, 2, 2]
    assert SwinArchitecture.from_dict(data) == arch


@pytest.mark.parametrize("data, fragment", [
    ({"in_channels": 1, "num_classes": 2, "feature_sise": 12}, "Did you mean 'feature_size'"),
    ({"num_classes": 2}, "architecture.in_channels: missing required key"),
    ({"in_channels": True, "num_classes": 2}, "architecture.in_channels: expected an integer"),
    ({"in_channels": 1, "num_classes": "2"}, "architecture.num_classes: expected an integer"),
    ({"in_channels": 1, "num_classes": 2, "depths": [2, "2"]},
     "architecture.depths[1]: expected an integer"),
    ({"in_channels": 1, "num_classes": 2, "drop_path_rate": "0"},
     "architecture.drop_path_rate: expected a number"),
    ({"in_channels": 1, "num_classes": 2, "gradient_checkpointing": 1},
     "architecture.gradient_checkpointing: expected bool"),
    ({"in_channels": 1, "num_classes": 2, "feature_size": 16}, "architecture.num_heads[0]"),
    ({"in_channels": 1, "num_classes": 2, "dim": "swin-dim"}, "Did you mean 'swin_dim'"),
    ({"in_channels": 1, "num_classes": 2, "depths": [2, 2]}, "same, non-zero length"),
    ({"in_channels": 1, "num_classes": 2, "patch_embed_stride": 4}, "supports 2 only"),
    ({"in_channels": 0, "num_classes": 2}, "architecture.in_channels: must be at least 1"),
])
def test_from_dict_names_the_bad_key(data: dict, fragment: str) -> None:
    with pytest.raises(PlanError) as info:
        SwinArchitecture.from_dict(data)
    assert fragment in str(info.value)


def test_from_dict_uses_the_json_path() -> None:
    with pytest.raises(PlanError, match=r"^plan\.architecture\.bogus: unknown key"):
        SwinArchitecture.from_dict({"in_channels": 1, "num_classes": 2, "bogus": 0},
                                   path="plan.architecture")


@pytest.mark.parametrize("shape", [(32, 64, 32), (64, 64, 64), (96, 32, 128)])
def test_valid_input_sizes_pass(shape: tuple[int, int, int]) -> None:
    SwinArchitecture(1, 2).check_input_size(shape)


@pytest.mark.parametrize("shape, fragment", [
    ((64, 64, 48), "multiple of 32, which axis x is not. Crop or pad to (64, 64, 64)"),
    ((16, 64, 64), "which axis z is not"),
    ((32, 32, 32), "single voxel at the 1/32 bottleneck"),
    ((64, 64), "must have 3 spatial axes"),
])
def test_invalid_input_sizes_are_explained(shape: tuple[int, ...], fragment: str) -> None:
    with pytest.raises(PlanError) as info:
        SwinArchitecture(1, 2).check_input_size(shape)
    assert fragment in str(info.value)


def test_divisor_follows_the_number_of_stages() -> None:
    arch = SwinArchitecture(1, 2, depths=(2, 2, 2), num_heads=(3, 6, 12))
    assert arch.input_divisor == 16
    arch.check_input_size((16, 32, 16))
