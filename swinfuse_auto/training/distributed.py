"""torchrun / DDP: one process per GPU (or CPU process with gloo), only rank 0 writes.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them a run is a plain single process and
nothing here does anything. Every rank draws its own batches (the batch index is mixed with the
rank), so no two ranks train on the same crops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from swinfuse_auto.models.device import choose_device


@dataclass(frozen=True)
class DistributedContext:
    """Rank facts of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (so all ranks take the same branch)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([int(flag)], dtype=torch.int64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks (for logging losses)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size


def init_distributed(device_name: str = "auto") -> tuple[DistributedContext, torch.device]:
    """Join the torchrun process group when launched by torchrun; pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(), choose_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_name, local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistributedContext(rank, world_size, local_rank), device


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
