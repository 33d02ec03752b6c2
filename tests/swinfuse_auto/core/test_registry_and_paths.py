from __future__ import annotations

import pytest

from swinfuse_auto.errors import ConfigError, DatasetError, RegistryError
from swinfuse_auto.paths import resolve_dataset
from swinfuse_auto.registry import PLANNERS, Registry


def test_registry_suggests_the_closest_name_and_lists_all() -> None:
    registry: Registry[type] = Registry("widget")

    @registry.register("sliding_window")
    class A: ...

    with pytest.raises(RegistryError, match="Did you mean 'sliding_window'.*Available widgets"):
        registry.get("sliding_windw")
    assert registry.names("slid*") == ["sliding_window"]


def test_registry_refuses_duplicate_names() -> None:
    registry: Registry[type] = Registry("widget")
    registry.register("x")(int)
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("x")(float)


def test_builtin_planners_are_found_lazily() -> None:
    assert {"default", "no_dim"} <= set(PLANNERS.names())


def _make(root, name: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "dataset.json").write_text("{}")


def test_dataset_resolves_by_name_id_and_path(tmp_path, monkeypatch) -> None:
    _make(tmp_path, "Dataset042_Liver")
    monkeypatch.setenv("SWINFUSE_RAW", str(tmp_path))
    monkeypatch.setenv("SWINFUSE_PREPROCESSED", str(tmp_path / "pre"))
    by_id = resolve_dataset("42")
    assert by_id.raw_dir == tmp_path / "Dataset042_Liver"
    assert resolve_dataset("Dataset042_Liver").raw_dir == by_id.raw_dir
    assert resolve_dataset(str(tmp_path / "Dataset042_Liver")).name == "Dataset042_Liver"
    assert by_id.preprocessed_dir == tmp_path / "pre" / "Dataset042_Liver"


def test_nnunet_raw_is_honoured_when_swinfuse_raw_is_unset(tmp_path, monkeypatch) -> None:
    _make(tmp_path, "Dataset007_Prostate")
    monkeypatch.delenv("SWINFUSE_RAW", raising=False)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert resolve_dataset("7").name == "Dataset007_Prostate"


def test_unknown_dataset_and_missing_roots_explain_the_fix(tmp_path, monkeypatch) -> None:
    _make(tmp_path, "Dataset001_A")
    monkeypatch.setenv("SWINFUSE_RAW", str(tmp_path))
    monkeypatch.delenv("SWINFUSE_PREPROCESSED", raising=False)
    with pytest.raises(DatasetError, match="Available: Dataset001_A"):
        resolve_dataset("2")
    with pytest.raises(ConfigError, match="SWINFUSE_PREPROCESSED"):
        resolve_dataset("1", require=("preprocessed",))
