from __future__ import annotations

import json

import pytest

from swinfuse_auto.data.splits import get_fold, load_or_create_splits, make_splits, num_folds_for
from swinfuse_auto.errors import ConfigError, PlanError

IDS = [f"case_{i:02d}" for i in range(11)]


def test_splits_are_deterministic_disjoint_and_cover_every_case() -> None:
    splits = make_splits(IDS, 5)
    assert splits == make_splits(list(reversed(IDS)), 5)
    vals = [set(s["val"]) for s in splits]
    assert set().union(*vals) == set(IDS)
    assert sum(len(v) for v in vals) == len(IDS)
    for split in splits:
        assert not set(split["train"]) & set(split["val"])
        assert set(split["train"]) | set(split["val"]) == set(IDS)


def test_fold_count_shrinks_with_few_cases() -> None:
    assert num_folds_for(20) == 5
    assert num_folds_for(3) == 3
    assert num_folds_for(1) == 0


def test_existing_user_edited_splits_are_kept(tmp_path) -> None:
    path = tmp_path / "splits_final.json"
    custom = [{"train": IDS[:8], "val": IDS[8:]}]
    path.write_text(json.dumps(custom))
    assert load_or_create_splits(path, IDS, 5) == custom


def test_splits_naming_unknown_cases_are_rejected(tmp_path) -> None:
    path = tmp_path / "splits_final.json"
    path.write_text(json.dumps([{"train": ["ghost"], "val": IDS[:2]}]))
    with pytest.raises(PlanError, match="ghost"):
        load_or_create_splits(path, IDS, 5)


def test_missing_fold_is_an_error_and_all_trains_everything() -> None:
    splits = make_splits(IDS, 5)
    with pytest.raises(ConfigError, match="valid folds: 0..4"):
        get_fold(splits, 7, IDS)
    assert get_fold(splits, "all", IDS) == {"train": sorted(IDS), "val": []}
