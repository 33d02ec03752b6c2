"""Training budgets below one step are refused before anything is written (issue 12, item 2).

0 used to mean "take the default" (train_fold --epochs 0 trained the full default budget) and a
negative count ran no step yet wrote checkpoint_final.pt of an untrained network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swinfuse_auto.cli.pretrain import main as pretrain_main
from swinfuse_auto.cli.train_fold import main as train_fold_main
from swinfuse_auto.errors import ConfigError
from swinfuse_auto.training.config import FinetuningConfig
from trainers.finetune import DEFAULT_BUDGET, FinetuneTrainer

DATASET = "Dataset990_SwinfuseExample"
#: Keeps a run short should a bad budget get through (as it did before the fix).
FAST = ["--set", "num_workers=0", "--set", "amp=false", "--no-validation", "--device", "cpu",
        "--no-progress"]


def _roots(roots: dict[str, str]) -> list[str]:
    return ["--raw", roots["raw"], "--preprocessed", roots["preprocessed"],
            "--results", roots["results"]]


def _error(capsys: pytest.CaptureFixture) -> str:
    return " ".join(capsys.readouterr().err.split())  # the message is wrapped to 100 columns


def _written(results: str) -> list[str]:
    root = Path(results)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("budget, name, value", [
    (["--epochs", "0", "--iterations-per-epoch", "1"], "epochs", "0"),
    (["--epochs", "-3", "--iterations-per-epoch", "1"], "epochs", "-3"),
    (["--epochs", "1", "--iterations-per-epoch", "-2"], "iterations_per_epoch", "-2"),
    (["--epochs", "1", "--iterations-per-epoch", "0"], "iterations_per_epoch", "0"),
    (["--set", "epochs=0", "--iterations-per-epoch", "1"], "epochs", "0"),
    (["--epochs", "1", "--set", "iterations_per_epoch=-2"], "iterations_per_epoch", "-2"),
])
def test_train_fold_refuses_a_budget_below_one(budget: list[str], name: str, value: str,
                                               fresh_results: dict[str, str],
                                               capsys: pytest.CaptureFixture) -> None:
    code = train_fold_main([DATASET, "0", "--pretrain", "none", *budget, *FAST,
                            *_roots(fresh_results)])
    message = _error(capsys)
    assert code == 2, message
    assert f"'{name}' is {value}, but it must be at least 1" in message
    assert "leave it out to take the default" in message
    assert _written(fresh_results["results"]) == []  # no fold folder, no checkpoint


@pytest.mark.parametrize("arguments, what", [
    (["--iterations", "0"], "iterations is 0"),
    (["--iterations", "-1"], "iterations is -1"),
    (["--iterations", "1", "--set", "iterations_per_epoch=0"], "'iterations_per_epoch' is 0"),
])
def test_pretrain_refuses_a_budget_below_one(arguments: list[str], what: str,
                                             fresh_results: dict[str, str],
                                             capsys: pytest.CaptureFixture) -> None:
    code = pretrain_main([DATASET, *arguments, "--set", "num_workers=0", "--set", "amp=false",
                          "--device", "cpu", "--no-progress", *_roots(fresh_results)])
    message = _error(capsys)
    assert code == 2, message
    assert what in message and "must be at least 1" in message
    assert _written(fresh_results["results"]) == []  # no encoder, no checkpoint


def test_unset_budget_is_none_and_takes_the_device_default() -> None:
    config = FinetuneTrainer.default_config()
    assert config.epochs is None and config.iterations_per_epoch is None
    assert config.budget(*DEFAULT_BUDGET["cpu"]) == DEFAULT_BUDGET["cpu"]
    explicit = config.with_overrides(["epochs=1", "iterations_per_epoch=2"])
    assert explicit.budget(*DEFAULT_BUDGET["cuda"]) == (1, 2)
    assert config.with_overrides(["epochs=null"]).epochs is None  # explicit "not set"


@pytest.mark.parametrize("field", ["epochs", "iterations_per_epoch"])
def test_config_itself_refuses_zero(field: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}' is 0"):
        FinetuningConfig(**{field: 0})
    with pytest.raises(ConfigError, match=f"'{field}' is -1"):
        FinetuningConfig.from_dict({field: -1})
