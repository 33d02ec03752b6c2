"""Library code reports progress through callbacks; it never draws bars itself."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from helpers.progress import RecordingProgress

from swinfuse_auto.parallel import parallel_map
from swinfuse_auto.training.loop import LoopSettings, TrainingLoop

ROOT = Path(__file__).resolve().parents[3]


def _batches(start: int) -> Iterator[Any]:
    while True:
        yield torch.ones(2, 3)


def test_the_loop_reports_each_epochs_steps_and_loss(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 1)
    progress = RecordingProgress()
    loop = TrainingLoop(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        lr_factor=lambda step: 1.0, loss_fn=lambda batch: {"loss": model(batch).pow(2).mean()},
        batches=_batches, settings=LoopSettings(2, 3, progress=progress),
        checkpoint_path=tmp_path / "checkpoint_latest.pt", meta={})
    loop.run()
    assert [(b.title, b.total, b.done, b.transient, b.closed) for b in progress.bars] == [
        ("epoch 0", 3, 3, True, True), ("epoch 1", 3, 3, True, True)]
    assert all(s.startswith("loss=") for b in progress.bars for s in b.statuses)


def test_parallel_work_reports_every_item() -> None:
    progress = RecordingProgress()
    assert sorted(parallel_map(abs, [-1, -2, 3], 1, "abs", progress)) == [1, 2, 3]
    [bar] = progress.bars
    assert (bar.title, bar.total, bar.done, bar.closed) == ("abs", 3, 3, True)


def test_only_the_api_layer_draws_progress_bars() -> None:
    drawing = []
    for path in sorted((ROOT / "swinfuse_auto").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "tqdm" for name in names):
                drawing.append(str(path.relative_to(ROOT)))
    assert drawing == ["swinfuse_auto/api/progress.py"]
