"""The recipe contract: what a trainer plug-in provides, so the stages can run any of them.

A recipe (``trainers/``, or a third-party package through the entry-point group
``swinfuse_auto.trainers``) is a class registered in :data:`swinfuse_auto.registry.TRAINERS`
that follows :class:`Recipe`. The stage runners (:mod:`swinfuse_auto.stages`) look a recipe up
with :func:`recipe_for_stage`, which refuses one of the other stage with the command that runs
it, build its config with :func:`recipe_config`, construct it with keyword arguments only (each
stage passes the same ones, listed at :data:`PRETRAINING` and :data:`FINE_TUNING`) and call
``run(resume)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.registry import TRAINERS
from swinfuse_auto.training.config import TrainerConfig

#: A pre-training recipe is constructed with ``plan``, ``stores`` (the case stores to draw
#: images from), ``output_dir``, ``config``, ``iterations`` (None: the plan's), ``device`` and
#: ``progress``; ``run`` returns the path of the pre-trained encoder file.
PRETRAINING = "pretraining"
#: A fine-tuning recipe is constructed with ``plan``, ``dataset_json``, ``store``,
#: ``train_ids``, ``val_ids``, ``fold``, ``output_dir``, ``config``, ``pretrained`` (an encoder
#: file or None), ``device``, ``progress`` and ``unlabelled`` (the imagesTs store); ``run``
#: returns the trained network, which the stage validates.
FINE_TUNING = "fine-tuning"
#: The command that runs each stage's recipes.
STAGE_COMMANDS = {PRETRAINING: "pretrain", FINE_TUNING: "train_fold"}


class Recipe(Protocol):
    """A training recipe of one stage.

    Attributes:
        name: the registered name (``--trainer NAME``), stored with the run.
        stage: :data:`PRETRAINING` or :data:`FINE_TUNING`.
    """

    name: ClassVar[str]
    stage: ClassVar[str]

    def __init__(self, **inputs: Any) -> None:
        """Store the stage's inputs (see :data:`PRETRAINING`, :data:`FINE_TUNING`); no side
        effects: folders, devices and data are set up by :meth:`run`."""

    @staticmethod
    def default_config() -> TrainerConfig:
        """The recipe's settings before presets and ``--set``."""

    @classmethod
    def accepted_settings(cls) -> list[str]:
        """The keys ``--set`` may change: the settings this recipe reads, no others."""

    def run(self, resume: bool) -> Any:
        """Train to the end of the budget; ``resume`` continues from ``checkpoint_latest.pt``."""


def recipe_for_stage(name: str, stage: str) -> type[Recipe]:
    """The recipe registered as ``name``, checked to be one of ``stage``.

    Raises:
        RegistryError: no recipe of that name (the message suggests the closest).
        ConfigError: a recipe of the other stage (the message names the command that runs it
            and the recipes of this stage), or a class that does not declare its stage.
    """
    recipe = TRAINERS.get(name)
    found = getattr(recipe, "stage", None)
    if found == stage:
        return recipe
    command = STAGE_COMMANDS[stage]
    own = [n for n in TRAINERS.names() if getattr(TRAINERS.get(n), "stage", None) == stage]
    choose = f"{command} takes a {stage} recipe: {', '.join(own) or '(none registered)'}."
    if found in STAGE_COMMANDS:
        raise ConfigError(f"--trainer {name} is a {found} recipe, not a {stage} one: run it with "
                          f"'{STAGE_COMMANDS[found]} DATASET --trainer {name}'. {choose}")
    raise ConfigError(f"--trainer {name} ({recipe!r}) does not declare its stage (stage = "
                      f"'{PRETRAINING}' or '{FINE_TUNING}'), so it cannot be run; it must follow "
                      f"swinfuse_auto.training.recipe.Recipe. {choose}")


def recipe_config(recipe: type[Recipe], overrides: list[str] | None) -> TrainerConfig:
    """The recipe's default config with ``overrides`` (``KEY=VALUE``) applied.

    Raises:
        ConfigError: a key the recipe does not accept (the message lists the accepted ones), or
            an invalid value.
    """
    return recipe.default_config().with_overrides(
        overrides, where=f"{STAGE_COMMANDS[recipe.stage]} --set",
        accepted=recipe.accepted_settings())
