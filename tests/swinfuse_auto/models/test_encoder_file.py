"""Encoder files written before plan schema 3 still load and adapt."""

from __future__ import annotations

from pathlib import Path

from swinfuse_auto.models.checkpoint import save_checkpoint
from swinfuse_auto.models.encoder_file import ENCODER_KIND, load_encoder
from swinfuse_auto.networks.architecture import SwinArchitecture


def test_an_encoder_file_with_the_old_architecture_names_loads(tmp_path: Path) -> None:
    old = {"in_channels": 1, "num_classes": 2, "feature_size": 6, "depths": [2, 2, 2, 2],
           "num_heads": [3, 6, 12, 24], "window_size": 7, "patch_size": 2, "dim": "swin_dim",
           "drop_path_rate": 0.0, "gradient_checkpointing": False}
    path = tmp_path / "pretrained_encoder.pt"
    save_checkpoint(path, {"encoder": {}}, {"kind": ENCODER_KIND, "architecture": old,
                                            "patch_size": [32, 64, 64]})
    _, meta = load_encoder(path)
    arch = SwinArchitecture.from_dict(meta["architecture"])
    assert arch.patch_embed_stride == 2 and arch.feature_size == 6
    assert meta["patch_size"] == [32, 64, 64]  # the pre-training crop is a crop, unchanged
