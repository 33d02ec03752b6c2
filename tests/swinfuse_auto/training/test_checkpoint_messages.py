"""Refused checkpoints are explained without torch's unsafe advice or a stage that may not apply
(issue 12, item 9)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.models.checkpoint import load_checkpoint, save_checkpoint

#: Advice that must never reach the user: the first would run the file's code, the second is
#: about training, and prediction and export load checkpoints too.
MISLEADING = ("weights_only=False", "weights_only` set to `False", "will likely succeed",
              "training resumes")


@dataclass
class Settings:
    """An arbitrary Python object, as a foreign or tampered checkpoint might hold."""

    depth: int = 3


def _refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message
    for advice in MISLEADING:
        assert advice not in message, message
    return message


def test_pickled_python_object_is_refused_for_safety(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"meta_json": "{}", "model": {"w": torch.zeros(2)}, "settings": Settings()}, path)
    message = _refusal(path)
    assert "holds more than tensors" in message and "pickled Python object" in message
    assert "Settings" in message and "refused" in message


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_checkpoint_has_its_own_message(damage: str, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_latest.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(64)}}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint")
    message = _refusal(path)
    assert "truncated or corrupt" in message and "more than tensors" not in message
