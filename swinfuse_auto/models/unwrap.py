"""The plain network inside training wrappers (DistributedDataParallel, torch.compile)."""

from __future__ import annotations

from torch import nn
from torch.nn.parallel import DistributedDataParallel


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel and torch.compile wrappers, in either order.

    Checkpoints are written from and loaded into this network, so their tensor names carry no
    ``module.`` or ``_orig_mod.`` prefix and load into a plain network for inference.
    """
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model
