"""Encoder weight transfer: channel inflation and exact loaded / missing / adapted key counts."""

from __future__ import annotations

import pytest
import torch

from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.factory import build_pretraining_model, build_segmentation_network
from swinfuse_auto.networks.transfer import inflate_input_channels, load_encoder_weights

ENCODER_TENSORS = 132  # stem 2 + DIM 14 + 8 blocks x 13 + 4 mergings x 3
DIM_TENSORS = 14


def _pretrained(dim: str = "swin_dim", feature_size: int = 6) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return build_pretraining_model(SwinArchitecture(1, 2, feature_size=feature_size,
                                                    dim=dim)).state_dict()


@pytest.mark.parametrize("channels", [2, 4])
def test_inflation_keeps_the_response_to_a_replicated_image(channels: int) -> None:
    weight = torch.randn(6, 1, 2, 2, 2)
    inflated = inflate_input_channels({"w": weight, "b": torch.zeros(6)}, "w", channels)["w"]
    assert inflated.shape == (6, channels, 2, 2, 2)
    image = torch.randn(1, 1, 4, 4, 4)
    torch.testing.assert_close(
        torch.nn.functional.conv3d(image.repeat(1, channels, 1, 1, 1), inflated, stride=2),
        torch.nn.functional.conv3d(image, weight, stride=2))


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_pretrained_encoder_loads_completely(channels: int) -> None:
    state = _pretrained()
    model = build_segmentation_network(SwinArchitecture(channels, 3, feature_size=6))
    loaded, missing, adapted = load_encoder_weights(model, state)
    assert (len(loaded), len(missing)) == (ENCODER_TENSORS, 0)
    assert adapted == ([] if channels == 1 else ["encoder.patch_embed.weight"])
    torch.testing.assert_close(model.state_dict()["encoder.stages.3.merge.norm.weight"],
                               state["encoder.stages.3.merge.norm.weight"])
    stem = model.state_dict()["encoder.patch_embed.weight"]
    torch.testing.assert_close(stem.sum(dim=1), state["encoder.patch_embed.weight"].sum(dim=1))


def test_checkpoint_without_dim_reports_the_dim_as_missing() -> None:
    model = build_segmentation_network(SwinArchitecture(1, 3, feature_size=6))
    wrapped = {"module." + k: v for k, v in _pretrained(dim="none").items()}
    loaded, missing, adapted = load_encoder_weights(model, wrapped)
    assert len(loaded) == ENCODER_TENSORS - DIM_TENSORS and len(missing) == DIM_TENSORS
    assert all(k.startswith("encoder.domain_invariance.") for k in missing) and not adapted


def test_bare_encoder_state_dict_is_accepted() -> None:
    source = build_segmentation_network(SwinArchitecture(1, 3, feature_size=6))
    model = build_segmentation_network(SwinArchitecture(1, 5, feature_size=6))
    loaded, missing, _ = load_encoder_weights(model, source.encoder.state_dict())
    assert (len(loaded), len(missing)) == (ENCODER_TENSORS, 0)


@pytest.mark.parametrize("state, arch, fragment", [
    ({}, SwinArchitecture(1, 3, feature_size=6), "No encoder weights were loaded"),
    ({"rotation_head.weight": torch.zeros(4, 96)}, SwinArchitecture(1, 3, feature_size=6),
     "No encoder weights were loaded"),
    (None, SwinArchitecture(1, 3, feature_size=6, dim="none"), "tensors this network lacks"),
    (None, SwinArchitecture(1, 3, feature_size=12), "has shape"),
])
def test_incompatible_checkpoints_raise(state: dict | None, arch: SwinArchitecture,
                                        fragment: str) -> None:
    model = build_segmentation_network(arch)
    with pytest.raises(CheckpointError, match=fragment):
        load_encoder_weights(model, _pretrained() if state is None else state)
