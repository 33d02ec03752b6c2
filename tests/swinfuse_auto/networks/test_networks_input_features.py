"""Input features: the MIND-SSC descriptor is blind to contrast and polarity, not to structure,
and a network fed it stores and restores like any other."""

from __future__ import annotations

import pytest
import torch

from helpers.untrained import untrained_plan
from swinfuse_auto.errors import CheckpointError, RegistryError
from swinfuse_auto.models.fold_model import FoldModel
from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.factory import build_segmentation_network
from swinfuse_auto.networks.input_features import INPUT_FEATURES, MindSSC

LIGHT = {"feature_size": 4, "num_heads": (1, 2, 2, 4)}


def _phantom(seed: int = 0) -> torch.Tensor:
    """(1, 1, 16, 24, 24): a noisy ball (one tissue) inside a box (another) on a background."""
    generator = torch.Generator().manual_seed(seed)
    z, y, x = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in (16, 24, 24)),
                             indexing="ij")
    image = torch.zeros(16, 24, 24)
    image[3:13, 4:20, 4:20] = 1.0
    image[((z - 8) ** 2 + (y - 12) ** 2 + (x - 12) ** 2) < 16] = 2.5
    return (image + 0.05 * torch.randn(image.shape, generator=generator))[None, None]


def test_descriptor_is_the_same_under_affine_maps_and_inversion() -> None:
    image = _phantom()
    descriptor = MindSSC()(image)
    assert descriptor.shape == (1, 12, 16, 24, 24)
    assert 0.0 <= float(descriptor.min()) and float(descriptor.max()) <= 1.0 + 1e-6
    for remapped in (3.0 * image + 100.0, -image, -0.01 * image + 0.2):
        assert torch.allclose(MindSSC()(remapped), descriptor, atol=1e-4)


def test_descriptor_follows_edges_not_noise() -> None:
    """Two noise draws of the same phantom give the same descriptor on the ball's edge; in flat
    regions it is noise (MIND's known trait), so it differs there."""
    first, second = MindSSC()(_phantom(0))[0], MindSSC()(_phantom(1))[0]
    change = (first - second).abs().mean(0)
    edge, flat = change[8, 12, 7:9].mean(), change[8, 12, 11:13].mean()  # ball radius 4 at x=12
    assert float(edge) < 0.5 * float(flat)


def test_tissue_wise_remap_keeps_the_descriptor_close() -> None:
    """A non-monotone remap of the tissues (as CT -> T1) moves the descriptor far less than it
    moves the intensities: the edges stay where they were."""
    image = _phantom()
    remapped = image.clone()
    remapped[image > 1.75] = 0.3  # the ball becomes darker than the box around it
    remapped[(image > 0.5) & (image <= 1.75)] = 2.0
    base, moved = MindSSC()(image), MindSSC()(remapped)
    correlation = torch.corrcoef(torch.stack([base.flatten(), moved.flatten()]))[0, 1]
    assert float(correlation) > 0.8


def test_network_fed_the_descriptor_keeps_image_channels_and_no_extra_weights() -> None:
    arch = SwinArchitecture(2, 3, **LIGHT)
    plain = build_segmentation_network(arch)
    mind = build_segmentation_network(arch, input_features="mind_ssc")
    assert mind(torch.randn(1, 2, 32, 64, 32)).shape == (1, 3, 32, 64, 32)
    assert set(plain.state_dict()) == set(mind.state_dict())
    stem = "encoder.patch_embed.weight"
    assert mind.state_dict()[stem].shape[1] == 2 * INPUT_FEATURES.get("mind_ssc")\
        .channels_per_image_channel


def test_fold_model_rebuilds_the_features_it_was_trained_with() -> None:
    dataset_json = {"name": "t", "channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1},
                    "numTraining": 1, "file_ending": ".nii.gz"}
    plan = untrained_plan(dataset_json, (2.0, 2.0, 2.0), (32, 64, 32),
                          architecture={"feature_size": 4, "num_heads": [1, 2, 2, 4]})
    trained = build_segmentation_network(plan.architecture, input_features="mind_ssc")
    model = FoldModel(plan, dataset_json, "0", "swin_dim_finetune",
                      {"input_features": "mind_ssc"}, trained.state_dict())
    assert isinstance(model.build_network().input_features, MindSSC)
    old = FoldModel(plan, dataset_json, "0", "swin_dim_finetune", {},
                    build_segmentation_network(plan.architecture).state_dict())
    assert old.input_features == "intensity"
    with pytest.raises(CheckpointError, match="do not match"):  # intensity weights, mind config
        FoldModel(plan, dataset_json, "0", "swin_dim_finetune", {"input_features": "mind_ssc"},
                  old.state_dict).build_network()


def test_unknown_features_name_the_valid_ones() -> None:
    with pytest.raises(RegistryError, match="mind_ssc"):
        build_segmentation_network(SwinArchitecture(1, 2, **LIGHT), input_features="mind")
