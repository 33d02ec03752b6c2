"""Where raw, preprocessed and result folders live, what is inside them, and how a DATASET
argument is resolved.

Roots come from explicit arguments first, then the environment (``SWINFUSE_RAW``,
``SWINFUSE_PREPROCESSED``, ``SWINFUSE_RESULTS``). When ``SWINFUSE_RAW`` is unset ``nnUNet_raw`` is
honoured so an existing nnU-Net dataset works as it is. A DATASET argument is a folder name
(``Dataset501_Liver``), its numeric id (``501``) or a path to the folder.

Results layout (``SWINFUSE_RESULTS``); every stage that writes or reads these names takes them
from here, so the writer and the reader of a file cannot disagree::

    DatasetXXX_Name/
      pretrain__<planner>/            shared pre-trained encoder (pretrained_encoder.pt)
      <trainer>__<planner>/           one model folder per trainer and plan
        plans.json, dataset.json
        postprocessing.json           written by summarize_cv, applied by predict
        cv_summary.json               written by summarize_cv
        fold_0/ ... fold_all/
          checkpoint_latest.pt, checkpoint_best.pt, checkpoint_final.pt
          training_log.json, progress.png
          validation/CASE.nii.gz, validation/summary.json
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from swinfuse_auto.errors import ConfigError, DatasetError

_ENV = {"raw": ("SWINFUSE_RAW", "nnUNet_raw"),
        "preprocessed": ("SWINFUSE_PREPROCESSED",),
        "results": ("SWINFUSE_RESULTS",)}
_FLAG = {"raw": "--raw", "preprocessed": "--preprocessed", "results": "--results"}
#: File names inside a dataset's preprocessed folder, shared by every stage that reads them.
PLANS_FILE = "plans.json"
SPLITS_FILE = "splits_final.json"
#: File names of the results layout (module notes).
LATEST_CHECKPOINT = "checkpoint_latest.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"
FINAL_CHECKPOINT = "checkpoint_final.pt"
ENCODER_FILE = "pretrained_encoder.pt"
TRAINING_LOG = "training_log.json"
VALIDATION_FOLDER = "validation"
POSTPROCESSING_FILE = "postprocessing.json"
CV_SUMMARY_FILE = "cv_summary.json"

_DATASET_NAME = re.compile(r"^Dataset(\d{3})_[A-Za-z0-9_\-]+$")


def root(kind: str, override: str | os.PathLike[str] | None = None) -> Path:
    """The root folder of ``kind`` ('raw', 'preprocessed' or 'results')."""
    if override:
        return Path(override).expanduser()
    for var in _ENV[kind]:
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser()
    raise ConfigError(
        f"No {kind} folder is set. Set the environment variable {_ENV[kind][0]} "
        f"(e.g. export {_ENV[kind][0]}=$HOME/swinfuse/{kind}) or pass {_FLAG[kind]} DIR.")


def model_folder_name(trainer: str, planner: str) -> str:
    """``<trainer>__<planner>``: the model folder of one recipe and plan."""
    return f"{trainer}__{planner}"


def fold_folder_name(fold: int | str) -> str:
    return f"fold_{fold}"


def pretrain_folder_name(planner: str) -> str:
    """``pretrain__<planner>``: the pre-training run shared by every fold of a plan."""
    return f"pretrain__{planner}"


@dataclass(frozen=True)
class DatasetLocation:
    """A resolved dataset: its name and its folders in each root."""

    name: str
    raw_dir: Path
    preprocessed_dir: Path | None
    results_dir: Path | None


def _find_by_id(raw_root: Path, dataset_id: int) -> Path:
    if not raw_root.is_dir():
        raise DatasetError(f"The raw folder {raw_root} does not exist. Check SWINFUSE_RAW/--raw.")
    matches = sorted(p for p in raw_root.iterdir()
                     if p.is_dir() and p.name.startswith(f"Dataset{dataset_id:03d}_"))
    if not matches:
        available = sorted(p.name for p in raw_root.iterdir() if _DATASET_NAME.match(p.name))
        raise DatasetError(f"No dataset with id {dataset_id} in {raw_root}. "
                           f"Available: {', '.join(available) or '(none)'}.")
    if len(matches) > 1:
        raise DatasetError(f"Dataset id {dataset_id} is ambiguous in {raw_root}: "
                           f"{', '.join(p.name for p in matches)}. Pass the full name instead.")
    return matches[0]


def resolve_dataset(dataset: str | os.PathLike[str], raw: str | None = None,
                    preprocessed: str | None = None, results: str | None = None,
                    require: tuple[str, ...] = ()) -> DatasetLocation:
    """Resolve a DATASET argument into its folders.

    Args:
        dataset: folder name, numeric id or path.
        raw, preprocessed, results: explicit roots overriding the environment.
        require: roots that must be configured ('preprocessed', 'results'); others are optional.

    Raises:
        DatasetError: the dataset folder cannot be found.
        ConfigError: a required root is not configured.
    """
    text = str(dataset)
    as_path = Path(text).expanduser()
    if as_path.is_dir() and (as_path / "dataset.json").exists() or os.sep in text:
        if not as_path.is_dir():
            raise DatasetError(f"The dataset folder {as_path} does not exist.")
        raw_dir = as_path.resolve()
    elif text.isdigit():
        raw_dir = _find_by_id(root("raw", raw), int(text))
    else:
        raw_dir = root("raw", raw) / text
        if not raw_dir.is_dir():
            raise DatasetError(f"The dataset folder {raw_dir} does not exist. Pass a dataset name "
                               f"under {raw_dir.parent}, its numeric id, or a path.")
    name = raw_dir.name

    def optional(kind: str, override: str | None) -> Path | None:
        try:
            return root(kind, override) / name
        except ConfigError:
            if kind in require:
                raise
            return None

    return DatasetLocation(name, raw_dir, optional("preprocessed", preprocessed),
                           optional("results", results))
