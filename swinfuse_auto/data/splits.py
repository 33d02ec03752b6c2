"""Cross-validation folds, created once at planning time and kept in ``splits_final.json``.

The file is nnU-Net's format (a list of {"train": [...], "val": [...]}), so users can edit it or
copy one over. An existing file is kept as long as it still matches the cases; asking for a fold
that does not exist is an error (nnU-Net silently falls back to a random 80:20 split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from swinfuse_auto.errors import ConfigError, PlanError
from swinfuse_auto.io.atomic import read_json, write_json

SPLIT_SEED = 12345
DEFAULT_FOLDS = 5

Split = dict[str, list[str]]


def num_folds_for(num_cases: int, preferred: int = DEFAULT_FOLDS) -> int:
    """5 folds, fewer when there are fewer cases; 0 when only ``all`` is possible (one case)."""
    return 0 if num_cases < 2 else min(preferred, num_cases)


def make_splits(case_ids: list[str], num_folds: int, seed: int = SPLIT_SEED) -> list[Split]:
    """Shuffled k-fold over the sorted ids: deterministic, disjoint validation sets."""
    ids = sorted(case_ids)
    if num_folds < 2:
        return []
    order = np.random.default_rng(seed).permutation(len(ids))
    folds = np.array_split(order, num_folds)
    splits = []
    for k in range(num_folds):
        val = sorted(ids[i] for i in folds[k])
        train = sorted(ids[i] for j in range(num_folds) if j != k for i in folds[j])
        splits.append({"train": train, "val": val})
    return splits


def _check_splits(splits: object, case_ids: list[str], path: Path) -> list[Split]:
    if not isinstance(splits, list) or not all(
            isinstance(s, dict) and isinstance(s.get("train"), list) and isinstance(s.get("val"), list)
            for s in splits):
        raise PlanError(f"{path} must be a list of {{\"train\": [...], \"val\": [...]}} objects. "
                        "Fix it or delete it to have it recreated.")
    known = set(case_ids)
    for k, split in enumerate(splits):
        unknown = sorted((set(split["train"]) | set(split["val"])) - known)
        if unknown:
            raise PlanError(f"{path}: fold {k} names cases that are not in the dataset: "
                            f"{unknown[:5]}. Fix the file or delete it to have it recreated.")
        overlap = sorted(set(split["train"]) & set(split["val"]))
        if overlap:
            raise PlanError(f"{path}: fold {k} has cases in both train and val: {overlap[:5]}.")
    return splits  # type: ignore[return-value]


def load_or_create_splits(path: Path, case_ids: list[str], num_folds: int) -> list[Split]:
    """Keep a valid existing splits file (user edits win); otherwise write a new one."""
    path = Path(path)
    if path.exists():
        return _check_splits(read_json(path), case_ids, path)
    splits = make_splits(case_ids, num_folds)
    write_json(path, splits)
    return splits


def get_fold(splits: list[Split], fold: int | str, case_ids: list[str]) -> Split:
    """The split for ``fold`` (an index or 'all': every case trains, none validates)."""
    if fold == "all":
        return {"train": sorted(case_ids), "val": []}
    try:
        index = int(fold)
    except ValueError:
        raise ConfigError(f"fold must be an integer or 'all', found '{fold}'.") from None
    if not 0 <= index < len(splits):
        valid = f"0..{len(splits) - 1} or 'all'" if splits else "only 'all' (too few cases)"
        raise ConfigError(f"fold {index} does not exist; valid folds: {valid}.")
    return splits[index]
