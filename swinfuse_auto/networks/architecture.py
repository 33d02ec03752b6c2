"""The Swin-DIM network's hyper-parameters as one frozen, JSON-friendly dataclass.

The plan stores a :class:`SwinArchitecture`; every network, the cost model and the weight transfer
are rebuilt from it alone, so a plan edited by hand must fail here, at load time, with the key that
is wrong, rather than as a shape error deep inside training.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from swinfuse_auto.errors import PlanError
from swinfuse_auto.typed_json import from_jsonable, to_jsonable

#: Names accepted by ``SwinArchitecture.dim``: the full module, its one-part-off ablations, or none.
DIM_VARIANTS: dict[str, frozenset[str]] = {
    "swin_dim": frozenset({"saliency", "style", "attention"}),
    "swin_dim_no_saliency": frozenset({"style", "attention"}),
    "swin_dim_no_style": frozenset({"saliency", "attention"}),
    "swin_dim_no_attention": frozenset({"saliency", "style"}),
    "none": frozenset(),
}

_INT_FIELDS = ("in_channels", "num_classes", "feature_size", "window_size", "patch_embed_stride")


@dataclass(frozen=True)
class SwinArchitecture:
    """Size and options of the Swin-DIM encoder and its UNETR decoder.

    Args:
        in_channels: image channels of the segmentation input (1 for pre-training).
        num_classes: output classes, background included.
        feature_size: channels after the patch embedding; doubled by every patch merging.
        depths: Swin blocks per stage.
        num_heads: attention heads per stage; must divide that stage's channels.
        window_size: attention window edge in tokens (shrunk where a map is smaller).
        patch_embed_stride: stride (and kernel) of the patch embedding; the UNETR decoder
            supports 2 only. (Not a crop: crops are ``patch_size`` in the plan.)
        dim: domain-invariance module variant, a key of :data:`DIM_VARIANTS` ("none" for ablations).
        drop_path_rate: stochastic-depth rate reached by the last block (linear ramp).
        gradient_checkpointing: recompute Swin blocks in the backward pass to save memory.

    Raises:
        PlanError: a value violates a constraint of the network.

    Example:
        >>> arch = SwinArchitecture(in_channels=1, num_classes=3, feature_size=12)
        >>> arch.check_input_size((64, 64, 32))
        >>> SwinArchitecture.from_dict(arch.to_dict()) == arch
        True
    """

    in_channels: int
    num_classes: int
    feature_size: int = 48
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    patch_embed_stride: int = 2
    dim: str = "swin_dim"
    drop_path_rate: float = 0.0
    gradient_checkpointing: bool = False

    #: Old key -> new key, for the did-you-mean of a hand-edited plan.
    RENAMED_KEYS: ClassVar[dict[str, str]] = {"patch_size": "patch_embed_stride"}

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            if getattr(self, name) < 1:
                raise PlanError(f"architecture.{name}: must be at least 1, found "
                                f"{getattr(self, name)}.")
        if self.patch_embed_stride != 2:
            raise PlanError(f"architecture.patch_embed_stride: the UNETR decoder supports 2 "
                            f"only, found {self.patch_embed_stride}.")
        if not self.depths or len(self.depths) != len(self.num_heads):
            raise PlanError(f"architecture.depths and architecture.num_heads must have the same, "
                            f"non-zero length (one entry per stage); found {list(self.depths)} and "
                            f"{list(self.num_heads)}.")
        if min(self.depths) < 1 or min(self.num_heads) < 1:
            raise PlanError("architecture.depths and architecture.num_heads: every entry must be "
                            f"at least 1, found {list(self.depths)} and {list(self.num_heads)}.")
        for stage, (width, heads) in enumerate(zip(self.stage_channels, self.num_heads)):
            if width % heads:
                raise PlanError(
                    f"architecture.num_heads[{stage}]: {heads} heads do not divide the "
                    f"{width} channels of stage {stage} (feature_size {self.feature_size} x "
                    f"{2 ** stage}); use a feature_size divisible by {self.num_heads[0]}.")
        if self.dim not in DIM_VARIANTS:
            close = difflib.get_close_matches(self.dim, list(DIM_VARIANTS), n=1)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise PlanError(f"architecture.dim: unknown variant '{self.dim}'. {hint}"
                            f"Valid: {', '.join(DIM_VARIANTS)}.")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise PlanError(f"architecture.drop_path_rate: must be in [0, 1), found "
                            f"{self.drop_path_rate}.")

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Channels inside each Swin stage (before its patch merging)."""
        return tuple(self.feature_size * 2 ** i for i in range(len(self.depths)))

    @property
    def input_divisor(self) -> int:
        """Every input axis must divide by this: the patch embedding and one 2x merge per stage."""
        return self.patch_embed_stride * 2 ** len(self.depths)

    @property
    def dim_parts(self) -> frozenset[str]:
        """The parts of the domain-invariance module this variant switches on."""
        return DIM_VARIANTS[self.dim]

    def check_input_size(self, shape_zyx: Sequence[int], path: str = "") -> None:
        """Raise unless a crop of this spatial shape can pass through encoder and decoder.

        Each patch merging halves an axis, and the skip connections need exact halves, so every
        axis must divide by :attr:`input_divisor`; instance norm at the bottleneck needs more than
        one voxel there.

        Args:
            shape_zyx: the crop.
            path: where the crop comes from (``configuration.patch_size``), to start messages.

        Raises:
            PlanError: the shape is not three axes, not divisible, or leaves a 1-voxel bottleneck.
        """
        shape = tuple(int(s) for s in shape_zyx)
        div = self.input_divisor
        where = f"{path}: " if path else ""
        if len(shape) != 3:
            raise PlanError(f"{where}Input size must have 3 spatial axes (z, y, x), but it is "
                            f"{shape}.")
        bad = [axis for axis, s in zip("zyx", shape) if s < div or s % div]
        if bad:
            nearest = tuple(max(div, int(round(s / div)) * div) for s in shape)
            raise PlanError(
                f"{where}Input size {shape} (z, y, x) does not fit a Swin encoder with "
                f"{len(self.depths)} stages and patch-embedding stride {self.patch_embed_stride}: "
                f"every axis must be a positive multiple of {div}, which axis {', '.join(bad)} is "
                f"not. Crop or pad to {nearest}, or let the planner choose the patch size.")
        if math.prod(s // div for s in shape) <= 1:
            raise PlanError(
                f"{where}Input size {shape} leaves a single voxel at the 1/{div} bottleneck, where "
                f"instance normalisation is undefined; make one axis at least {2 * div}, "
                f"e.g. {(2 * div,) + shape[1:]}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "architecture") -> SwinArchitecture:
        """Validated inverse of :meth:`to_dict`, through the plan's own JSON reader
        (:mod:`swinfuse_auto.typed_json`); ``path`` prefixes the key in error messages.

        Raises:
            PlanError: an unknown or missing key, a wrong type or a violated constraint.
        """
        return from_jsonable(cls, dict(data) if isinstance(data, Mapping) else data, path)
