"""Pre-training as a stage: which data, which folder, and once-only creation under a lock.

``train_fold --pretrain auto`` may be started for five folds at once; the first to take the lock
pre-trains, the others wait and then reuse the encoder file, so the work is done once per
dataset and plan.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from swinfuse_auto.dataset.modality import Modality
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.paths import (ENCODER_FILE, LATEST_CHECKPOINT, PLANS_FILE, pretrain_folder_name,
                                 resolve_dataset)
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore
from swinfuse_auto.preprocessing.extra_folders import preprocess_extra_folder
from swinfuse_auto.progress import Progress
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_PRETRAINER
from swinfuse_auto.training.config import require_positive
from swinfuse_auto.training.distributed import init_distributed
from swinfuse_auto.training.recipe import PRETRAINING, recipe_config, recipe_for_stage

logger = logging.getLogger(__name__)


@contextmanager
def exclusive_lock(path: Path, enabled: bool = True) -> Iterator[None]:
    """An advisory file lock, released when the process ends even if it crashes.

    Under torchrun only rank 0 takes it (``enabled``); the other ranks follow rank 0's decision
    through a broadcast, so they never wait on a lock their own rank 0 holds.
    """
    if not enabled:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def parse_extra(extra: Sequence[Sequence[str]] | None) -> list[tuple[Path, str]]:
    """``--extra DIR MODALITY`` pairs, checked."""
    result = []
    for directory, modality in extra or []:
        valid = [m.value for m in Modality]
        if modality not in valid:
            raise ConfigError(f"--extra {directory} {modality}: the modality must be one of "
                              f"{valid}.")
        if not Path(directory).is_dir():
            raise ConfigError(f"--extra {directory}: no such folder.")
        result.append((Path(directory), modality))
    return result


def run_pretraining(dataset: str | os.PathLike[str], planner: str = DEFAULT_PLANNER,
                    iterations: int | None = None, extra: Sequence[Sequence[str]] | None = None,
                    trainer: str = DEFAULT_PRETRAINER, config_overrides: list[str] | None = None,
                    device: str = "auto", num_processes: int = 1, restart: bool = False,
                    preprocessed: str | None = None, results: str | None = None,
                    raw: str | None = None, progress: Progress | None = None) -> Path:
    """Pre-train the dataset's Swin-DIM encoder; returns the path of ``pretrained_encoder.pt``.

    Resumes an interrupted run unless ``restart``; a finished run is reused as it is. The
    arguments are those of :func:`swinfuse_auto.api.pretrain`, with ``progress`` a callback.

    Raises:
        ConfigError: a budget below 1 step (``iterations`` or the config), a setting the recipe
            does not accept, a recipe of another stage, a plan of another planner or a bad
            ``extra`` folder; checked before anything runs.
        RegistryError: an unknown recipe.
    """
    require_positive("pretrain: iterations", iterations, "Pass --iterations N with N >= 1")
    recipe = recipe_for_stage(trainer, PRETRAINING)
    config = recipe_config(recipe, config_overrides)
    location = resolve_dataset(dataset, raw=raw, preprocessed=preprocessed, results=results,
                               require=("preprocessed", "results"))
    assert location.preprocessed_dir is not None and location.results_dir is not None
    plan = Plan.load(location.preprocessed_dir / PLANS_FILE)
    if plan.planner != planner:
        raise ConfigError(f"{location.preprocessed_dir / PLANS_FILE} was made by planner "
                          f"'{plan.planner}', not '{planner}'. Re-run plan_and_preprocess with "
                          f"--planner {planner}, or pass --planner {plan.planner}.")
    output = location.results_dir / pretrain_folder_name(planner)
    context, _ = init_distributed(device)
    with exclusive_lock(output / ".pretrain.lock", enabled=context.is_main):
        encoder = output / ENCODER_FILE
        if context.broadcast_flag(encoder.exists() and not restart):
            logger.info("reusing the pre-trained encoder %s", encoder)
            return encoder
        if restart and context.is_main:
            for name in (ENCODER_FILE, LATEST_CHECKPOINT):
                (output / name).unlink(missing_ok=True)
        stores = [CaseStore(location.preprocessed_dir / LABELLED_FOLDER),
                  CaseStore(location.preprocessed_dir / UNLABELLED_FOLDER)]
        for directory, modality in parse_extra(extra):
            stores.append(preprocess_extra_folder(directory, modality, plan,
                                                  location.preprocessed_dir, num_processes,
                                                  progress))
        runner = recipe(plan=plan, stores=[s for s in stores if s.case_ids()], output_dir=output,
                        config=config, iterations=iterations, device=device, progress=progress)
        return runner.run(resume=not restart)
