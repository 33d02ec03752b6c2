"""Shape rules every planned crop obeys, as pure functions shared by the planner and migrations.

The rotation task of pre-training turns a crop by multiples of 90 degrees, which keeps its shape
only in a plane whose two axes are equal. (That every axis divides by the encoder's total
down-sampling is the network's own rule: :attr:`SwinArchitecture.input_divisor
<swinfuse_auto.networks.architecture.SwinArchitecture.input_divisor>`.)
"""

from __future__ import annotations

from collections.abc import Sequence

#: Planes of a (z, y, x) crop, in the order the rotation task prefers them: axial first.
ROTATION_PLANES_ZYX: tuple[tuple[int, int], ...] = ((1, 2), (0, 2), (0, 1))


def rotation_plane_zyx(shape: Sequence[int]) -> tuple[int, int] | None:
    """The first plane (two spatial axes of a (z, y, x) shape) whose axes are equal, or None."""
    spatial = list(shape)[-3:]
    for a, b in ROTATION_PLANES_ZYX:
        if spatial[a] == spatial[b]:
            return a, b
    return None


def has_rotation_plane(shape: Sequence[int]) -> bool:
    return rotation_plane_zyx(shape) is not None


def square_in_plane(patch: Sequence[int]) -> tuple[int, int, int]:
    """(z, m, m) with m the smaller in-plane axis: the largest sub-crop that rotates axially."""
    z, y, x = (int(v) for v in patch)
    side = min(y, x)
    return z, side, side


def pretraining_crop_for(patch: Sequence[int]) -> tuple[int, int, int]:
    """The crop a plan without its own pre-training crop (schema 1) pre-trains with.

    A patch that already has a rotation plane is kept, which is what schema-1 plans did;
    otherwise its in-plane axes are squared, where schema 1 failed (a 32x96x128 patch).
    """
    z, y, x = (int(v) for v in patch)
    return (z, y, x) if has_rotation_plane((z, y, x)) else square_in_plane((z, y, x))
