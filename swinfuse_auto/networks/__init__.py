"""Swin-DIM networks: architecture, encoder, DIM, UNETR decoder, pre-training heads, weight
transfer and the measured cost model.

Names are resolved lazily: the plan and the planner import :mod:`.architecture` and
:mod:`.cost_model`, which do not need torch, and loading a plan must not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DIM_VARIANTS": "architecture", "SwinArchitecture": "architecture",
    "estimate_training_memory_gb": "cost_model", "estimate_step_seconds_cpu": "cost_model",
    "DomainInvarianceModule": "dim",
    "NETWORKS": "factory", "PRETRAINING_NETWORK": "factory", "SEGMENTATION_NETWORK": "factory",
    "build_network": "factory", "build_pretraining_model": "factory",
    "build_segmentation_network": "factory",
    "PretrainingOutputs": "ssl", "SwinPretrainingModel": "ssl",
    "SwinEncoder": "swin",
    "inflate_input_channels": "transfer", "load_encoder_weights": "transfer",
    "SwinDIMUNETR": "unetr",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
