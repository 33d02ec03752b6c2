"""unwrap_model: checkpoints come from the plain network whatever wraps it."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from swinfuse_auto.models.unwrap import unwrap_model


class _HasModuleAttribute(nn.Module):
    """A network of a user's own whose submodule happens to be called ``module``."""

    def __init__(self) -> None:
        super().__init__()
        self.module = nn.Linear(2, 2)


def test_ddp_and_compile_are_unwrapped_in_either_order(tmp_path: Path) -> None:
    net = nn.Linear(3, 2)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        for wrapped in (torch.compile(DistributedDataParallel(net)),
                        DistributedDataParallel(torch.compile(net))):
            assert unwrap_model(wrapped) is net
            assert set(unwrap_model(wrapped).state_dict()) == {"weight", "bias"}
    finally:
        dist.destroy_process_group()
    assert unwrap_model(net) is net


def test_a_submodule_named_module_is_not_a_wrapper() -> None:
    net = _HasModuleAttribute()
    assert unwrap_model(net) is net
