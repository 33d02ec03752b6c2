"""The recipe contract: every registered recipe declares its stage and the settings it reads, is
built with keyword arguments, and the commands refuse a recipe or a setting of the other stage
with one paragraph and exit 2 (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swinfuse_auto.api import pretrain
from swinfuse_auto.cli.pretrain import main as pretrain_main
from swinfuse_auto.cli.train_fold import main as train_fold_main
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.models.checkpoint import load_checkpoint
from swinfuse_auto.paths import LATEST_CHECKPOINT
from swinfuse_auto.registry import DEFAULT_PRETRAINER, DEFAULT_TRAINER, TRAINERS
from swinfuse_auto.training.config import TrainerConfig
from swinfuse_auto.training.recipe import (FINE_TUNING, PRETRAINING, STAGE_COMMANDS,
                                           recipe_config, recipe_for_stage)

DATASET = "Dataset990_SwinfuseExample"
FAST = ["num_workers=0", "amp=false"]


def _roots(roots: dict[str, str]) -> list[str]:
    return ["--raw", roots["raw"], "--preprocessed", roots["preprocessed"],
            "--results", roots["results"]]


def _failure(code: int, capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "error: " in err
    message = err[err.index("error: "):]  # after the log lines, if any
    assert "\n\n" not in message.strip()  # one paragraph
    return " ".join(message.split())  # the message is wrapped to 100 columns


def _written(results: str) -> list[Path]:
    root = Path(results)
    return sorted(root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("name", TRAINERS.names())
def test_every_recipe_follows_the_contract(name: str) -> None:
    recipe = TRAINERS.get(name)
    assert recipe.stage in STAGE_COMMANDS
    assert recipe.name == name
    config = recipe.default_config()
    assert isinstance(config, TrainerConfig)
    assert set(recipe.accepted_settings()) <= set(config.setting_names())
    assert callable(recipe.run)
    with pytest.raises(TypeError):  # keyword arguments only
        recipe(None, None, None)


def test_each_stage_reads_its_own_settings() -> None:
    finetune, pretraining = TRAINERS.get(DEFAULT_TRAINER), TRAINERS.get(DEFAULT_PRETRAINER)
    assert {"deep_supervision", "epochs", "augmentation.gin_probability",
            "self_training"} <= set(finetune.accepted_settings())
    assert {"learning_rate", "weight_decay", "warmup_fraction", "max_warmup_iterations",
            "contrastive_temperature", "density_matching_weight",
            "compile"} <= set(pretraining.accepted_settings())
    assert not {"deep_supervision", "epochs", "augmentation.gin_probability",
                "input_scaling"} & set(pretraining.accepted_settings())
    config = recipe_config(finetune, ["augmentation.gin_probability=0.5"])
    assert config.augmentation.gin_probability == 0.5  # type: ignore[attr-defined]


def test_a_recipe_of_the_other_stage_is_refused_in_python() -> None:
    with pytest.raises(ConfigError, match="run it with 'pretrain DATASET --trainer "
                                          f"{DEFAULT_PRETRAINER}'"):
        recipe_for_stage(DEFAULT_PRETRAINER, FINE_TUNING)
    with pytest.raises(ConfigError, match=f"run it with 'train_fold DATASET --trainer "
                                          f"{DEFAULT_TRAINER}'"):
        recipe_for_stage(DEFAULT_TRAINER, PRETRAINING)


def test_train_fold_with_a_pretraining_recipe_is_one_paragraph_and_exit_2(
        fresh_results: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    code = train_fold_main([DATASET, "0", "--trainer", DEFAULT_PRETRAINER, "--pretrain", "none",
                            "--no-progress", *_roots(fresh_results)])
    message = _failure(code, capsys)
    assert f"--trainer {DEFAULT_PRETRAINER} is a pretraining recipe" in message
    assert f"pretrain DATASET --trainer {DEFAULT_PRETRAINER}" in message
    assert DEFAULT_TRAINER in message  # the recipe train_fold takes
    assert _written(fresh_results["results"]) == []


def test_pretrain_with_a_fine_tuning_recipe_is_refused(fresh_results: dict[str, str],
                                                       capsys: pytest.CaptureFixture) -> None:
    code = pretrain_main([DATASET, "--trainer", DEFAULT_TRAINER, "--no-progress",
                          *_roots(fresh_results)])
    assert f"train_fold DATASET --trainer {DEFAULT_TRAINER}" in _failure(code, capsys)


@pytest.mark.parametrize("setting, why", [
    ("nonsense=1", "'nonsense' is not a setting"),
    ("learning_rat=1e-3", "'learning_rat' is not a setting. Did you mean 'learning_rate'?"),
    ("deep_supervision=true", "'deep_supervision' is a setting of fine-tuning (train_fold --set)"),
    ("epochs=3", "'epochs' is a setting of fine-tuning"),
    ("augmentation.gin_probability=0.5",
     "'augmentation.gin_probability' is a setting of fine-tuning"),
])
def test_pretrain_refuses_a_setting_it_would_ignore(setting: str, why: str,
                                                    fresh_results: dict[str, str],
                                                    capsys: pytest.CaptureFixture) -> None:
    code = pretrain_main([DATASET, "--iterations", "1", "--set", setting, "--no-progress",
                          *_roots(fresh_results)])
    message = _failure(code, capsys)
    assert f"pretrain --set {setting}: {why}" in message
    assert "Accepted keys: amp, compile, contrastive_temperature, density_matching_weight" \
        in message
    assert _written(fresh_results["results"]) == []


def test_train_fold_refuses_a_pretraining_setting(fresh_results: dict[str, str],
                                                  capsys: pytest.CaptureFixture) -> None:
    code = train_fold_main([DATASET, "0", "--pretrain", "none", "--set",
                            "density_matching_weight=0.5", "--no-progress",
                            *_roots(fresh_results)])
    message = _failure(code, capsys)
    assert "'density_matching_weight' is a setting of pre-training (pretrain --set)" in message
    assert "augmentation.gin_probability" in message  # in the accepted keys


def test_pretrain_learning_rate_setting_is_the_learning_rate(fresh_results: dict[str, str],
                                                             tmp_path: Path) -> None:
    """``pretrain --set learning_rate=X`` used to be ignored for the plan's value."""
    rates = {}
    for name, overrides in (("default", []), ("set", ["learning_rate=0.0123"])):
        roots = {**fresh_results, "results": str(tmp_path / name)}
        encoder = pretrain(DATASET, iterations=2, device="cpu",
                           config_overrides=[*FAST, "iterations_per_epoch=2", *overrides],
                           **roots)
        tensors, meta = load_checkpoint(encoder.parent / LATEST_CHECKPOINT)
        groups = tensors["optimizer"]["param_groups"]
        assert {g["initial_lr"] for g in groups} == {meta["trainer_config"]["learning_rate"]}
        rates[name] = groups[0]["initial_lr"]
    assert rates == {"default": 4e-4, "set": 0.0123}


def test_pretraining_compiles_when_asked(tiny_roots: dict[str, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from swinfuse_auto.plans.schema import Plan
    from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, CaseStore

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    recipe = TRAINERS.get(DEFAULT_PRETRAINER)
    pre = Path(tiny_roots["preprocessed"]) / DATASET
    config = recipe_config(recipe, ["compile=true", *FAST])
    recipe(plan=Plan.load(pre / "plans.json"), stores=[CaseStore(pre / LABELLED_FOLDER)],
           output_dir=tmp_path, config=config, iterations=1, device="cpu").build_loop()
    assert len(compiled) == 1
