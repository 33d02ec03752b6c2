"""Fine-tuning one fold as a stage: resolve folders, get the encoder, train, validate."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from swinfuse_auto.data.splits import get_fold, load_or_create_splits
from swinfuse_auto.errors import ConfigError, PreprocessingError
from swinfuse_auto.io.atomic import read_json, write_json
from swinfuse_auto.networks.input_features import INPUT_FEATURES
from swinfuse_auto.paths import (PLANS_FILE, SPLITS_FILE, fold_folder_name, model_folder_name,
                                 resolve_dataset)
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore
from swinfuse_auto.progress import Progress
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_TRAINER, TRAINER_PRESETS
from swinfuse_auto.stages.fold_validation import validate_fold
from swinfuse_auto.stages.pretraining import run_pretraining
from swinfuse_auto.training.distributed import init_distributed
from swinfuse_auto.training.recipe import FINE_TUNING, recipe_config, recipe_for_stage

logger = logging.getLogger(__name__)


def _resolve_pretrained(choice: str, dataset: str | os.PathLike[str], planner: str,
                        device: str, roots: dict[str, str | None], progress: Progress | None,
                        input_features: str = "intensity") -> Path | None:
    if choice == "none":
        return None
    if choice == "auto" and not INPUT_FEATURES.get(input_features).pretrained_encoder_fits:
        logger.warning("--pretrain auto: starting from random weights, since the pre-trained "
                       "encoder saw intensities and this network is fed %s (it measured worse "
                       "from that encoder; give the encoder's path to use it anyway)",
                       input_features)
        return None
    if choice == "auto":
        return run_pretraining(dataset, planner=planner, device=device, progress=progress,
                               **roots)
    path = Path(choice)
    if not path.is_file():
        raise ConfigError(f"--pretrain {choice}: no such file. Use auto, none or the path of a "
                          "pretrained_encoder.pt.")
    return path


def budget_overrides(epochs: int | None, iterations_per_epoch: int | None) -> list[str]:
    """``--set`` items for the explicit budget arguments; None leaves the recipe's default.

    Every given value is passed on, 0 and negatives included, so that the config refuses
    them instead of their being mistaken for "not given".
    """
    budget = {"epochs": epochs, "iterations_per_epoch": iterations_per_epoch}
    return [f"{key}={value}" for key, value in budget.items() if value is not None]


def preset_overrides(preset: str | None, plan: Plan, trainer: str) -> list[str]:
    """The ``--set`` items of ``preset``, else of the plan's preset when it is for ``trainer``.

    Raises:
        ConfigError: ``preset`` belongs to another recipe.
        RegistryError: an unknown preset name.
    """
    chosen = TRAINER_PRESETS.get(preset or plan.finetuning_preset)
    if chosen.recipe != trainer:
        if preset is None:
            return []  # the plan's preset is for the built-in recipe, not this one
        raise ConfigError(f"--preset {preset} is a preset of '{chosen.recipe}', not of "
                          f"--trainer {trainer}. Leave out one of the two.")
    logger.info("fine-tuning preset %s%s: %s", preset or plan.finetuning_preset,
                "" if preset else " (the plan's)", chosen.description)
    return chosen.overrides()


def run_fold_training(dataset: str | os.PathLike[str], fold: int | str,
                      pretrain_choice: str = "auto", trainer: str = DEFAULT_TRAINER,
                      planner: str = DEFAULT_PLANNER, epochs: int | None = None,
                      iterations_per_epoch: int | None = None,
                      config_overrides: list[str] | None = None, continue_training: bool = False,
                      validate: bool = True, device: str = "auto", raw: str | None = None,
                      preprocessed: str | None = None, results: str | None = None,
                      progress: Progress | None = None, preset: str | None = None) -> Path:
    """Train fold ``fold`` ('all' trains on every case) and validate it; returns the fold folder.

    The settings are the recipe's defaults, then ``preset`` (default: the preset the plan names
    for this dataset), then ``config_overrides`` and the budget arguments. The arguments are
    those of :func:`swinfuse_auto.api.train_fold`, with ``progress`` a callback.

    Raises:
        ConfigError: unknown fold, preset or pretrain choice, a recipe of another stage, a
            setting the recipe does not accept, or a budget below 1 step; checked before
            anything is written.
        PlanError / PreprocessingError: the dataset was not planned or preprocessed.
    """
    recipe = recipe_for_stage(trainer, FINE_TUNING)
    location = resolve_dataset(dataset, raw=raw, preprocessed=preprocessed, results=results,
                               require=("preprocessed", "results"))
    assert location.preprocessed_dir is not None and location.results_dir is not None
    plan = Plan.load(location.preprocessed_dir / PLANS_FILE)
    overrides = [*preset_overrides(preset, plan, trainer), *(config_overrides or []),
                 *budget_overrides(epochs, iterations_per_epoch)]
    config = recipe_config(recipe, overrides)  # checked before any writing
    store = CaseStore(location.preprocessed_dir / LABELLED_FOLDER)
    case_ids = store.case_ids()
    if not case_ids:
        raise PreprocessingError(f"{store.folder} holds no preprocessed cases. Run "
                                 f"plan_and_preprocess -d {location.name} first.")
    splits = load_or_create_splits(location.preprocessed_dir / SPLITS_FILE, case_ids,
                                   plan.num_folds)
    split = get_fold(splits, fold, case_ids)
    roots = {"raw": raw, "preprocessed": preprocessed, "results": results}
    encoder = _resolve_pretrained(pretrain_choice, dataset, planner, device, roots, progress,
                                  getattr(config, "input_features", "intensity"))
    model_dir = location.results_dir / model_folder_name(trainer, planner)
    fold_dir = model_dir / fold_folder_name(fold)
    context, _ = init_distributed(device)
    dataset_json = read_json(location.raw_dir / "dataset.json")
    if context.is_main:
        model_dir.mkdir(parents=True, exist_ok=True)
        plan.save(model_dir / PLANS_FILE)
        write_json(model_dir / "dataset.json", dataset_json)
    runner = recipe(plan=plan, dataset_json=dataset_json, store=store, train_ids=split["train"],
                    val_ids=split["val"], fold=str(fold), output_dir=fold_dir, config=config,
                    pretrained=encoder, device=device, progress=progress,
                    unlabelled=CaseStore(location.preprocessed_dir / UNLABELLED_FOLDER))
    network = runner.run(resume=continue_training)
    if validate and split["val"] and context.is_main:
        validate_fold(fold_dir, location.raw_dir, network, plan, store, split["val"], config,
                      progress)
    return fold_dir
