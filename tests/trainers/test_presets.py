"""Named fine-tuning presets: each one is a valid setting of its recipe, and each sets what its
name promises."""

from __future__ import annotations

import pytest

from swinfuse_auto.registry import TRAINER_PRESETS
from swinfuse_auto.training.config import FinetuningConfig


@pytest.mark.parametrize("name", TRAINER_PRESETS.names())
def test_every_preset_is_a_valid_configuration(name: str) -> None:
    preset = TRAINER_PRESETS.get(name)
    config = FinetuningConfig().with_overrides(preset.overrides())
    for key, value in preset.settings.items():
        section, _, field = key.rpartition(".")
        holder = getattr(config, section) if section else config
        assert getattr(holder, field) == value, (name, key)


def test_modality_independent_feeds_the_descriptor_and_keeps_the_rest_of_nnunet_intensity(
        ) -> None:
    base = TRAINER_PRESETS.get("nnunet_intensity").settings
    settings = TRAINER_PRESETS.get("modality_independent").settings
    assert settings["input_features"] == "mind_ssc"
    assert {k: v for k, v in settings.items() if k != "input_features"} == base


def test_pretrain_auto_starts_from_random_weights_where_the_encoder_does_not_fit(
        caplog: pytest.LogCaptureFixture) -> None:
    """The encoder ``pretrain`` makes saw intensities; with MIND-SSC in, it measured worse than
    random weights, so ``--pretrain auto`` does not even make it (no dataset is touched)."""
    from swinfuse_auto.stages.fold_training import _resolve_pretrained

    assert _resolve_pretrained("auto", "no-such-dataset", "default", "cpu", {}, None,
                               "mind_ssc") is None
    assert "random weights" in caplog.text
