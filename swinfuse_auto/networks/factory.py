"""The two networks of the pipeline, built from a :class:`SwinArchitecture` alone.

The plan stores the architecture, never a class path, so a checkpoint can always be rebuilt from
``networks/`` and the plan: the segmentation network for fine-tuning and prediction, the
pre-training model (encoder plus SwinFUSE heads) for pre-training.
"""

from __future__ import annotations

from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.ssl import SwinPretrainingModel
from swinfuse_auto.networks.unetr import SwinDIMUNETR


def build_segmentation_network(arch: SwinArchitecture, deep_supervision: bool = False,
                               input_features: str = "intensity") -> SwinDIMUNETR:
    """The Swin-DIM UNETR for ``arch`` (logits at the input's resolution), fed the registered
    ``input_features`` of the image (:mod:`.input_features`)."""
    return SwinDIMUNETR(arch, deep_supervision=deep_supervision, input_features=input_features)


def build_pretraining_model(arch: SwinArchitecture) -> SwinPretrainingModel:
    """The encoder with SwinFUSE's rotation, contrastive, inpainting and embedding heads."""
    return SwinPretrainingModel(arch)
