"""Networks by name: the plan stores a registry name and a :class:`SwinArchitecture`, never a class
path, so a checkpoint can always be rebuilt from ``networks/`` and the plan alone.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.ssl import SwinPretrainingModel
from swinfuse_auto.networks.unetr import SwinDIMUNETR
from swinfuse_auto.registry import Registry

#: Network builders, each called as ``builder(arch, **options)``.
NETWORKS: Registry[Callable[..., nn.Module]] = Registry("network")
NETWORKS.register("swin_dim_unetr")(SwinDIMUNETR)
NETWORKS.register("swin_dim_pretraining")(SwinPretrainingModel)

SEGMENTATION_NETWORK = "swin_dim_unetr"
PRETRAINING_NETWORK = "swin_dim_pretraining"


def build_network(name: str, arch: SwinArchitecture, **options: object) -> nn.Module:
    """Build the network registered as ``name``; unknown names raise RegistryError with hints."""
    return NETWORKS.get(name)(arch, **options)


def build_segmentation_network(arch: SwinArchitecture, deep_supervision: bool = False
                               ) -> SwinDIMUNETR:
    """The Swin-DIM UNETR for ``arch`` (logits at the input's resolution)."""
    return SwinDIMUNETR(arch, deep_supervision=deep_supervision)


def build_pretraining_model(arch: SwinArchitecture) -> SwinPretrainingModel:
    """The encoder with SwinFUSE's rotation, contrastive, inpainting and embedding heads."""
    return SwinPretrainingModel(arch)
