"""Batches as a pure function of (seed, rank, global step), produced by background workers.

Each batch draws its randomness from ``numpy.random.default_rng([seed, rank, step])``, so:
* resuming at step k reproduces exactly the batches an uninterrupted run would have seen;
* every DDP rank trains on different crops;
* worker processes (torch DataLoader, order-preserving, prefetching) need no shared RNG state.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

MakeBatch = Callable[[np.random.Generator], Any]


class _StepDataset(Dataset):
    def __init__(self, make_batch: MakeBatch, seed: int, rank: int) -> None:
        self.make_batch, self.seed, self.rank = make_batch, seed, rank

    def __getitem__(self, step: int) -> Any:
        return self.make_batch(np.random.default_rng([self.seed, self.rank, step]))


class _StepsFrom(Sampler[int]):
    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def _worker_init(_: int) -> None:
    # Each worker is one process; letting each also spawn a full BLAS/torch thread pool
    # oversubscribes the cores that the training step itself needs. The BLAS pool was created
    # before the fork, so an environment variable is too late: threadpoolctl resizes it
    # (threadpoolctl comes with batchgenerators).
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def step_batches(make_batch: MakeBatch, start_step: int, seed: int, rank: int = 0,
                 num_workers: int = 2, prefetch: int = 2) -> Iterator[Any]:
    """An endless iterator of batches for steps ``start_step, start_step + 1, ...``."""
    dataset = _StepDataset(make_batch, seed, rank)
    if num_workers <= 0:
        return (dataset[step] for step in itertools.count(start_step))
    loader = DataLoader(dataset, batch_size=None, sampler=_StepsFrom(start_step),
                        num_workers=num_workers, prefetch_factor=prefetch,
                        worker_init_fn=_worker_init, persistent_workers=False)
    return iter(loader)
