"""Device choice: ``auto`` takes a GPU when there is one, and nothing anywhere assumes CUDA."""

from __future__ import annotations

import torch

from swinfuse_auto.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def choose_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The torch device for ``--device`` (``cuda`` picks this process's GPU under torchrun)."""
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ConfigError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, found '{name}'.")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but no CUDA GPU is visible to torch. "
                              "Use --device cpu (or auto), or install a CUDA build of torch.")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that support it; full precision on the CPU (bf16 is slower there)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None
