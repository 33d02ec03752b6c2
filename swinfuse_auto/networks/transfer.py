"""Moving a pre-trained Swin-DIM encoder into a segmentation network.

Pre-training sees each channel as its own single-channel image, so a dataset with C channels needs
the stem inflated to C input channels; any other mismatch means the checkpoint belongs to another
architecture and is an error, never a silent skip (nnU-Net and MONAI users lose weeks to
"loaded" checkpoints of which half the tensors were quietly dropped).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from swinfuse_auto.errors import CheckpointError

logger = logging.getLogger(__name__)

#: The stem weight, (feature_size, in_channels, p, p, p), in the encoder's own namespace.
STEM_KEY = "patch_embed.weight"
ENCODER_PREFIX = "encoder."
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


def inflate_input_channels(state_dict: Mapping[str, torch.Tensor], key: str,
                           new_in_channels: int) -> dict[str, torch.Tensor]:
    """Copy of ``state_dict`` whose ``key`` weight takes ``new_in_channels`` inputs.

    The input channels are summed and the result repeated and divided by the new count, so an
    image copied into every new channel gives exactly the pre-trained response (for a
    single-channel source: repeat and divide by C).

    Raises:
        CheckpointError: ``key`` is absent or not a weight with an input-channel axis.
    """
    if key not in state_dict:
        raise CheckpointError(f"Cannot inflate input channels: '{key}' is not in the state dict "
                              f"(it has {len(state_dict)} keys, e.g. {list(state_dict)[:3]}).")
    weight = state_dict[key]
    if weight.dim() < 2 or new_in_channels < 1:
        raise CheckpointError(f"Cannot inflate '{key}' of shape {tuple(weight.shape)} to "
                              f"{new_in_channels} input channels: expected (out, in, ...) and a "
                              "positive channel count.")
    summed = weight.sum(dim=1, keepdim=True)
    repeats = (1, new_in_channels) + (1,) * (weight.dim() - 2)
    result = dict(state_dict)
    result[key] = summed.repeat(repeats) / new_in_channels
    return result


def _encoder_entries(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Encoder tensors keyed in the encoder's namespace, from any of our checkpoints' layouts.

    Accepts a pre-training or segmentation model's state dict (``encoder.*`` keys, heads and
    decoder ignored, with a log line), a bare encoder's, and either one wrapped by DDP or
    torch.compile.
    """
    cleaned = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        cleaned[key] = value
    if not any(k.startswith(ENCODER_PREFIX) for k in cleaned):
        return cleaned
    others = [k for k in cleaned if not k.startswith(ENCODER_PREFIX)]
    if others:
        logger.info("ignoring %d non-encoder tensors of the checkpoint (heads/decoder), e.g. %s",
                    len(others), others[:3])
    return {k.removeprefix(ENCODER_PREFIX): v for k, v in cleaned.items()
            if k.startswith(ENCODER_PREFIX)}


def load_encoder_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]
                         ) -> tuple[list[str], list[str], list[str]]:
    """Load pre-trained encoder weights into ``model.encoder``, adapting the stem's channels.

    Args:
        model: a network with an ``encoder`` attribute (segmentation or pre-training model).
        state_dict: a checkpoint's model state (see :func:`_encoder_entries` for the layouts).

    Returns:
        ``(loaded_keys, missing_keys, adapted_keys)`` in the model's namespace (``encoder.*``):
        tensors copied, encoder tensors the checkpoint lacks (left at their initialisation; for
        a DIM this is the identity), and tensors changed to fit (the inflated stem).

    Raises:
        CheckpointError: nothing loaded, a checkpoint tensor the encoder has no place for, or a
            shape mismatch other than the stem's input channels.
    """
    target = model.encoder.state_dict()
    source = _encoder_entries(state_dict)
    if not any(k in target for k in source):
        raise CheckpointError(f"No encoder weights were loaded: none of the checkpoint's "
                              f"{len(source)} tensors (e.g. {list(source)[:3]}) belongs to this "
                              "encoder. Check that it is a Swin-DIM pre-training or "
                              "segmentation checkpoint.")
    unexpected = sorted(k for k in source if k not in target)
    if unexpected:
        raise CheckpointError(
            f"The checkpoint has {len(unexpected)} encoder tensors this network lacks, e.g. "
            f"{unexpected[:3]}: it was made for another architecture (depths, DIM variant). "
            "Build the network with the checkpoint's architecture, or pre-train again.")
    adapted = []
    stem = source.get(STEM_KEY)
    want = target[STEM_KEY]
    if stem is not None and stem.shape != want.shape:
        if stem.shape[:1] + stem.shape[2:] != want.shape[:1] + want.shape[2:]:
            raise _shape_error(STEM_KEY, stem, want)
        source = inflate_input_channels(source, STEM_KEY, want.shape[1])
        adapted.append(STEM_KEY)
    for key, value in source.items():
        if value.shape != target[key].shape:
            raise _shape_error(key, value, target[key])
    merged = {**target, **{k: v.to(target[k].dtype) for k, v in source.items()}}
    model.encoder.load_state_dict(merged, strict=True)
    missing = [k for k in target if k not in source]
    if missing:
        logger.warning("%d encoder tensors were not in the checkpoint and keep their "
                       "initialisation, e.g. %s", len(missing), missing[:3])
    return ([ENCODER_PREFIX + k for k in source], [ENCODER_PREFIX + k for k in missing],
            [ENCODER_PREFIX + k for k in adapted])


def _shape_error(key: str, found: torch.Tensor, expected: torch.Tensor) -> CheckpointError:
    return CheckpointError(f"Checkpoint tensor 'encoder.{key}' has shape {tuple(found.shape)}, "
                           f"but this network expects {tuple(expected.shape)}: the checkpoint "
                           "was made for another feature size or window. Build the network with "
                           "the checkpoint's architecture.")
