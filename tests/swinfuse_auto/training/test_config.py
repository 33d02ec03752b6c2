"""Recipe configs: one class per stage, so a key is either read by a command or refused."""

from __future__ import annotations

import pytest

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.training.config import FinetuningConfig, PretrainingConfig, TrainerConfig


def test_the_stages_share_the_optimisation_settings_and_nothing_else() -> None:
    shared = set(TrainerConfig.setting_names())
    finetuning, pretraining = (set(c.setting_names())
                               for c in (FinetuningConfig, PretrainingConfig))
    assert finetuning & pretraining == shared
    assert {"learning_rate", "weight_decay", "warmup_fraction", "compile"} <= shared
    assert {"contrastive_temperature", "density_matching_weight",
            "max_warmup_iterations"} == pretraining - shared
    assert "deep_supervision" in finetuning - shared


@pytest.mark.parametrize("total", [1, 4, 19, 20, 40, 404, 999, 1000, 1001, 20_000])
def test_pretraining_warmup_is_what_the_plan_and_config_gave_together(total: int) -> None:
    """Before schema 3: min(plan warmup_iterations 50, int(5% of the steps) or 1)."""
    assert PretrainingConfig().warmup_steps(total) == min(50, int(0.05 * total) or 1)


def test_an_unknown_key_names_the_stage_it_belongs_to() -> None:
    with pytest.raises(ConfigError) as info:
        PretrainingConfig().with_overrides(["deep_supervision=true"], where="pretrain --set")
    message = str(info.value)
    assert message.startswith("pretrain --set deep_supervision=true: 'deep_supervision' is a "
                              "setting of fine-tuning (train_fold --set)")
    assert f"Accepted keys: {', '.join(PretrainingConfig.setting_names())}." in message
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        FinetuningConfig().with_overrides(["learning_rate"])


def test_accepted_keys_can_be_narrower_than_the_class() -> None:
    with pytest.raises(ConfigError, match="Accepted keys: learning_rate, seed."):
        FinetuningConfig().with_overrides(["epochs=2"], accepted=["learning_rate", "seed"])


@pytest.mark.parametrize("override, fragment", [
    ("contrastive_temperature=0", "'contrastive_temperature' is 0"),
    ("density_matching_weight=-1", "'density_matching_weight' is -1"),
    ("max_warmup_iterations=-1", "'max_warmup_iterations' is -1"),
])
def test_pretraining_values_are_checked(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        PretrainingConfig().with_overrides([override])


def test_overrides_keep_the_config_class() -> None:
    config = PretrainingConfig().with_overrides(["learning_rate=1e-3", "compile=true"])
    assert isinstance(config, PretrainingConfig)
    assert (config.learning_rate, config.compile) == (1e-3, True)
    assert PretrainingConfig.from_dict(config.to_dict()) == config
