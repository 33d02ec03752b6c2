"""The training loop shared by pre-training and fine-tuning; it knows nothing about Swin or Dice.

What makes resuming exact: batches are a pure function of (seed, rank, global step) (see
:mod:`swinfuse_auto.data.step_loader`), the learning rate is a pure function of the step, and the
checkpoint written at the end of every epoch holds the model, the optimiser and every RNG state.
A run killed at any moment therefore loses at most the current epoch, and a resumed run ends
with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.models.checkpoint import load_checkpoint, save_checkpoint
from swinfuse_auto.models.unwrap import unwrap_model
from swinfuse_auto.progress import Progress, start_progress
from swinfuse_auto.training.distributed import DistributedContext
from swinfuse_auto.training.rng_state import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)
LossFn = Callable[[Any], dict[str, torch.Tensor]]


class EpochCallback(Protocol):
    def __call__(self, loop: TrainingLoop, record: dict[str, float]) -> None: ...


@dataclass
class LoopSettings:
    """How long to train and how to step (none of it depends on the data)."""

    epochs: int
    iterations_per_epoch: int
    grad_clip: float | None = 12.0
    amp_dtype: torch.dtype | None = None
    #: reports the steps of each epoch (rank 0 only); None is silent
    progress: Progress | None = None
    #: epochs at whose start the batches are asked for again (a new data source, e.g. the
    #: pseudo-labelled cases of self-training); ``batches(step)`` decides what it returns
    new_batches_at_epochs: tuple[int, ...] = ()


@dataclass
class TrainingLoop:
    """Runs epochs of ``loss_fn`` over ``batches`` and checkpoints after each.

    Args:
        model: the (possibly DDP-wrapped) module whose parameters ``optimizer`` updates.
        optimizer: any torch optimiser; each group's ``initial_lr`` is scaled by ``lr_factor``.
        lr_factor: multiplier of the base learning rate as a function of the global step.
        loss_fn: batch -> dict of scalar losses with the total under "loss".
        batches: start step -> iterator of batches from that step on.
        settings: epochs, iterations, clipping, autocast.
        checkpoint_path: where the latest state goes (rank 0 only).
        meta: JSON metadata stored in every checkpoint (plan, configs, names).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr_factor: Callable[[int], float]
    loss_fn: LossFn
    batches: Callable[[int], Iterator[Any]]
    settings: LoopSettings
    checkpoint_path: Path
    meta: dict[str, Any]
    context: DistributedContext = field(default_factory=DistributedContext)
    callbacks: Sequence[EpochCallback] = ()
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])

    @property
    def step(self) -> int:
        return self.epoch * self.settings.iterations_per_epoch

    def state_tensors(self) -> dict[str, Any]:
        rng_tensors, _ = capture_rng_state()
        return {"model": unwrap_model(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": rng_tensors}

    def save(self, path: Path | None = None, extra_meta: dict[str, Any] | None = None) -> None:
        """Checkpoint (rank 0 only): weights, optimiser, RNG, epoch and history."""
        if not self.context.is_main:
            return
        _, rng_json = capture_rng_state()
        meta = {**self.meta, **(extra_meta or {}), "epoch": self.epoch, "history": self.history,
                "rng": rng_json, "world_size": self.context.world_size}
        save_checkpoint(path or self.checkpoint_path, self.state_tensors(), meta)

    def resume(self, path: Path, expect: dict[str, Any] | None = None) -> None:
        """Continue from a checkpoint written by :meth:`save`.

        Args:
            expect: metadata the checkpoint must match (plan digest, budget); a run with other
                settings cannot be continued exactly, so it is refused rather than mixed.
        """
        tensors, meta = load_checkpoint(path)
        for key, value in (expect or {}).items():
            if meta.get(key) != value:
                raise CheckpointError(
                    f"{path} belongs to a run with another {key} ({meta.get(key)!r}, now "
                    f"{value!r}); it cannot be continued. Delete it (or the run folder) to start "
                    "afresh, or restore the settings it was made with.")
        unwrap_model(self.model).load_state_dict(tensors["model"])
        self.optimizer.load_state_dict(tensors["optimizer"])
        restore_rng_state(tensors["rng"], meta["rng"])
        self.epoch, self.history = int(meta["epoch"]), list(meta["history"])
        logger.info("resumed from %s at epoch %d", path, self.epoch)

    def _train_step(self, batch: Any) -> dict[str, float]:
        device_type = next(self.model.parameters()).device.type
        autocast = (torch.autocast(device_type, dtype=self.settings.amp_dtype)
                    if self.settings.amp_dtype else nullcontext())
        with autocast:
            losses = self.loss_fn(batch)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if self.settings.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    def _set_lr(self) -> None:
        factor = self.lr_factor(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def run_epoch(self, iterator: Iterator[Any]) -> dict[str, float]:
        """One epoch; returns mean losses and the data-wait / compute split in seconds."""
        self.model.train()
        sums: dict[str, float] = {}
        wait = compute = 0.0
        iterations = self.settings.iterations_per_epoch
        bar = start_progress(self.settings.progress if self.context.is_main else None,
                             f"epoch {self.epoch}", iterations, "step", transient=True)
        try:
            for _ in range(iterations):
                tick = time.perf_counter()
                batch = next(iterator)
                tock = time.perf_counter()
                self._set_lr()
                losses = self._train_step(batch)
                wait, compute = wait + tock - tick, compute + time.perf_counter() - tock
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + value
                bar.advance()
                bar.status(f"loss={losses['loss']:.4f}")
        finally:
            bar.close()
        record = {k: self.context.mean(v / iterations) for k, v in sums.items()}
        record.update(epoch=float(self.epoch), lr=self.optimizer.param_groups[0]["lr"],
                      data_wait_s=wait, compute_s=compute)
        return record

    def run(self) -> list[dict[str, float]]:
        """Train until ``settings.epochs``, checkpointing after every epoch."""
        iterator, made_at = self.batches(self.step), self.epoch
        while self.epoch < self.settings.epochs:
            if self.epoch in self.settings.new_batches_at_epochs and made_at < self.epoch:
                iterator = iter(())  # drop the old loader (and its workers) first
                iterator, made_at = self.batches(self.step), self.epoch
            record = self.run_epoch(iterator)
            self.epoch += 1
            self.history.append(record)
            for callback in self.callbacks:  # before saving, so the checkpoint has their results
                callback(self, record)
            self.save()
            logger.info("epoch %d/%d: %s", self.epoch, self.settings.epochs,
                        ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
        return self.history
