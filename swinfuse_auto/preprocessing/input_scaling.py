"""How a preprocessed volume is scaled just before it reaches the network, by registered name.

The plan normalises CT with the dataset's clip window and z-score (Hounsfield units mean the same
in every scan) and MR per image (its units are arbitrary). For one modality that is right; across
modalities it is not: a CT-trained network has only ever seen the CT numbers, and an MR volume
arrives in another range with another histogram (after the CT clip, a third of a CT volume sits
at the floor value; in T1 MR, fat is the brightest tissue). ``image_zscore`` puts every image of
every modality on one footing: each channel is z-scored by its own mean and standard deviation,
both taken within its 0.5th / 99.5th percentiles (so a few bright or dark outliers do not set
the scale). It is an affine map of the plan's scheme (nothing is clipped), and the result has
the unit spread the training augmentation's noise, contrast and gamma ranges were made for (a
map to [0, 1], tried first, made them 3-4 times stronger relative to the image and halved the
CT Dice of a 600-step run).

The scaling is a trainer setting (stored with every fold model), applied to whole preprocessed
volumes both when training batches are cut and when a volume is predicted, so both see the same
numbers. Percentiles come from a fixed subsample of at most ~2 million voxels, cheap for a
512x512x400 CT and identical in both places.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from swinfuse_auto.registry import Registry

#: (C, z, y, x) volume -> per-channel (scale, offset) with ``scaled = volume * scale + offset``.
ScalingFn = Callable[[np.ndarray], np.ndarray]
INPUT_SCALINGS: Registry[ScalingFn] = Registry("input scaling")
PERCENTILES = (0.5, 99.5)
_MAX_SAMPLE_VOXELS = 2_000_000
_EPS = 1e-6


def _subsample(channel: np.ndarray) -> np.ndarray:
    """Every k-th voxel along each axis, k the smallest stride leaving <= ~2M voxels."""
    stride = 1
    while np.prod([-(-s // stride) for s in channel.shape]) > _MAX_SAMPLE_VOXELS:
        stride += 1
    return np.asarray(channel[::stride, ::stride, ::stride], dtype=np.float32)


@INPUT_SCALINGS.register("plan")
def plan_scaling(volume: np.ndarray) -> np.ndarray:
    """The plan's normalisation as it is."""
    return np.tile(np.array([1.0, 0.0], dtype=np.float32), (volume.shape[0], 1))


@INPUT_SCALINGS.register("image_zscore")
def image_zscore_scaling(volume: np.ndarray) -> np.ndarray:
    """Each channel z-scored by its own mean and standard deviation, both taken within its
    0.5th / 99.5th percentiles (module notes)."""
    rows = []
    for channel in volume:
        sample = _subsample(channel)
        low, high = np.percentile(sample, PERCENTILES)
        clipped = np.clip(sample, low, high)
        scale = 1.0 / max(float(clipped.std()), _EPS)
        rows.append((scale, -float(clipped.mean()) * scale))
    return np.array(rows, dtype=np.float32)


def scaling_parameters(volume: np.ndarray, scheme: str) -> np.ndarray:
    """(C, 2) per-channel (scale, offset) of ``scheme`` for a (C, z, y, x) volume.

    Raises:
        RegistryError: an unknown scheme (the message lists the valid ones).
    """
    return INPUT_SCALINGS.get(scheme)(volume)


def apply_scaling(array: np.ndarray, parameters: np.ndarray, channel_axis: int = 0
                  ) -> np.ndarray:
    """``array`` as float32 with channel ``c`` (along ``channel_axis``) scaled by row ``c`` of
    ``parameters``; use ``channel_axis=1`` for a (B, C, z, y, x) batch."""
    shape = [1] * np.ndim(array)
    shape[channel_axis] = -1
    scale, offset = parameters[:, 0].reshape(shape), parameters[:, 1].reshape(shape)
    return (np.asarray(array, dtype=np.float32) * scale + offset).astype(np.float32, copy=False)
