"""Checkpoints that are safe to load and never half-written.

A checkpoint is one ``torch.save`` file holding only tensors, state dicts of tensors and numbers,
and one JSON string with the metadata (plan, configs, registry names, and the RNG states of
numpy and Python that the training loop keeps there). It loads with
``torch.load(weights_only=True)``, so a checkpoint from somewhere else cannot run code. Writing
goes to a temporary name, then ``os.replace``: killing the process at any moment leaves either
the old checkpoint or the new one.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from swinfuse_auto.errors import CheckpointError
from swinfuse_auto.io.atomic import atomic_path

FORMAT_VERSION = 1
#: The class torch's weights-only unpickler refused ("Unsupported global: GLOBAL mod.Cls" since
#: torch 2.4, "Unsupported class mod.Cls" before).
_UNSAFE_GLOBAL = re.compile(r"Unsupported (?:global: GLOBAL|class) ([\w.]+)")
#: The unpickler's own finding, without torch's advice around it.
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:(.*)", re.S)


def save_checkpoint(path: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``tensors`` (state dicts) plus JSON ``meta`` atomically."""
    payload = {"format_version": FORMAT_VERSION, "meta_json": json.dumps(meta), **tensors}
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint with ``weights_only=True``; returns (tensors, meta).

    Raises:
        CheckpointError: missing, truncated, tampered-with or foreign file (the message names it).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist. Check the path, or train/pre-train first.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError,
            OSError) as exc:
        raise _load_failure(path, exc) from None
    if not isinstance(payload, dict) or "meta_json" not in payload:
        raise CheckpointError(f"{path} is not a swinfuse_auto checkpoint (no metadata block).")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer swinfuse_auto; upgrade to load it.")
    meta = json.loads(payload.pop("meta_json"))
    payload.pop("format_version", None)
    return payload, meta


def _load_failure(path: Path, exc: BaseException) -> CheckpointError:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in words that fit every caller.

    torch's own message advises ``weights_only=False``, which would run whatever code the file
    carries, so it is never quoted; and since training, prediction and export all load
    checkpoints, the advice names no stage.
    """
    text = str(exc)
    unsafe = _UNSAFE_GLOBAL.search(text)
    if unsafe:
        return CheckpointError(
            f"{path} cannot be loaded safely: it holds more than tensors (a pickled Python object "
            f"of type {unsafe[1]}), and unpickling it could run arbitrary code, so it is "
            "refused. swinfuse_auto checkpoints hold only tensors, numbers and JSON metadata; use "
            "one written by swinfuse_auto (train_fold, pretrain or export_model).")
    return CheckpointError(
        f"{path} cannot be loaded ({_reason(exc)}): it is truncated or corrupt, or not a "
        "swinfuse_auto checkpoint. Replace it with an intact copy, or delete it and create it "
        "again.")


def _reason(exc: BaseException) -> str:
    """The first sentence of what went wrong, leaving out torch's weights_only advice."""
    text = str(exc)
    detail = _UNPICKLER_DETAIL.search(text)
    if detail:
        text = detail[1]
    elif "weights_only" in text:
        return "unreadable pickle data"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(". ")[0].rstrip(".") if lines else type(exc).__name__
