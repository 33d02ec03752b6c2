"""Every random number generator's state, for checkpoints that resume exactly.

Torch's states are tensors (stored beside the weights); numpy's and Python's are JSON-able values
(stored in the checkpoint's metadata), so a checkpoint still loads with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Torch RNG states as tensors, numpy and Python ones as JSON-able values."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    py_state = random.getstate()
    json_state = {"numpy": np.random.get_state(legacy=False),
                  "python": [py_state[0], list(py_state[1]), py_state[2]]}
    numpy_state = json_state["numpy"]["state"]  # MT19937: {"key": uint32 array, "pos": int}
    json_state["numpy"]["state"] = {k: np.asarray(v).tolist() for k, v in numpy_state.items()}
    return tensors, json_state


def restore_rng_state(tensors: dict[str, torch.Tensor], json_state: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"].cpu())
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"].cpu())
    numpy_state = dict(json_state["numpy"])
    numpy_state["state"] = {k: np.asarray(v, dtype=np.uint32) if isinstance(v, list) else v
                            for k, v in numpy_state["state"].items()}
    np.random.set_state(numpy_state)
    version, internal, gauss = json_state["python"]
    random.setstate((version, tuple(internal), gauss))
