"""Training augmentation: nnU-Net's batchgenerators (v1) recipe behind one small interface.

The rest of the package never imports batchgenerators: it sees an :class:`AugmentationPipeline`,
a callable ``(image (B, C, z, y, x), seg (B, 1, z, y, x), rng) -> (image, seg)`` made of stages
with the same signature, and the :class:`AugmentationConfig` that sets every probability and
range. Swapping the backend (e.g. batchgeneratorsv2, or a GPU implementation) touches this module
only.

Spatial augmentation needs a larger input than the patch it returns (rotation and zoom-out look
outside the patch); :attr:`AugmentationPipeline.input_patch_size` tells the batch maker how much to
crop, so that, apart from voxels outside the image, no padding is rotated into view.

batchgenerators draws from the global ``np.random`` and stdlib ``random`` states. Each of its stages
seeds both from the caller's ``rng`` and restores them afterwards, so a batch is a pure function of
``rng`` in any process, and code outside the call sees the global states untouched.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from batchgenerators.transforms.abstract_transforms import Compose
from batchgenerators.transforms.color_transforms import (BrightnessMultiplicativeTransform,
                                                         ContrastAugmentationTransform,
                                                         GammaTransform)
from batchgenerators.transforms.noise_transforms import (GaussianBlurTransform,
                                                         GaussianNoiseTransform)
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

from swinfuse_auto.data.intensity_augmentation import IntensityAugmentation
from swinfuse_auto.data.location_scale import LocationScaleAugmentation
from swinfuse_auto.errors import ConfigError

Stage = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
Range = tuple[float, float]

#: Angles per rotation axis when searching the worst-case rotated extent (2D: 0.5 degree steps
#: over +-180; 3D: 61^3 rotations, under 0.2 voxel short of the true maximum for a 128 patch).
_ANGLE_STEPS = {2: 721, 3: 61}


@dataclass(frozen=True)
class AugmentationConfig:
    """Probabilities (per sample) and ranges of the training augmentation.

    Defaults are nnU-Net's (REFERENCE.md), plus the modality-agnostic GIN intensity augmentation
    that lets a CT-trained model see MR-like contrasts. Elastic deformation is off, as in nnU-Net;
    its displacement is not included in the enlarged input crop. Angles are in degrees.

    Raises:
        ConfigError: if a probability is outside [0, 1], a range is reversed or a mirror axis is
            not 0, 1 or 2.

    Example:
        >>> AugmentationConfig(gin_probability=0.0, mirror_axes=(1, 2))  # no GIN, no z flips
    """

    rotation_degrees: float = 30.0
    in_plane_rotation_degrees: float = 180.0  # used instead for anisotropic patches
    rotation_probability: float = 0.2
    scale_range: Range = (0.7, 1.4)
    scale_probability: float = 0.2
    elastic_alpha: Range = (0.0, 900.0)
    elastic_sigma: Range = (9.0, 13.0)
    elastic_probability: float = 0.0
    image_order: int = 3
    label_order: int = 1  # per-label linear interpolation, then argmax (smooth label edges)
    noise_variance: Range = (0.0, 0.1)
    noise_probability: float = 0.1
    blur_sigma: Range = (0.5, 1.0)
    blur_probability: float = 0.2
    brightness_range: Range = (0.75, 1.25)
    brightness_probability: float = 0.15
    contrast_range: Range = (0.75, 1.25)
    contrast_probability: float = 0.15
    low_resolution_zoom: Range = (0.5, 1.0)
    low_resolution_probability: float = 0.25
    gamma_range: Range = (0.7, 1.5)
    gamma_inverted_probability: float = 0.1
    gamma_probability: float = 0.3
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    gin_probability: float = 0.3
    ipa_probability: float = 0.0
    inversion_probability: float = 0.0
    location_scale_probability: float = 0.0
    location_scale_class_aware_probability: float = 0.5
    location_scale_blend_voxels: float = 1.0
    anisotropy_threshold: float = 3.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_probability") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"AugmentationConfig.{f.name}: expected a probability in "
                                  f"[0, 1], found {value}.")
            if f.name.endswith(("_range", "_alpha", "_sigma", "_zoom", "_variance")) \
                    and not value[0] <= value[1]:
                raise ConfigError(f"AugmentationConfig.{f.name}: expected (low, high) with "
                                  f"low <= high, found {tuple(value)}.")
        for name in ("image_order", "label_order"):
            if getattr(self, name) not in range(6):
                raise ConfigError(f"AugmentationConfig.{name}: expected a spline order 0..5 "
                                  f"(0 nearest, 1 linear, 3 cubic), found {getattr(self, name)}.")
        if not set(self.mirror_axes) <= {0, 1, 2}:
            raise ConfigError(f"AugmentationConfig.mirror_axes: expected spatial axes among "
                              f"(0, 1, 2) for (z, y, x), found {tuple(self.mirror_axes)}.")


class AugmentationPipeline:
    """Stages applied in order to a batch; each stage draws its randomness from ``rng``.

    Stages may write into the arrays they are given (batchgenerators does), so pass arrays the
    caller no longer needs.

    Args:
        stages: callables ``(image, seg, rng) -> (image, seg)``; none means identity.
        input_patch_size: the crop the first stage expects (larger than the output for spatial
            augmentation); None when the pipeline keeps the spatial size.
        patch_size: the spatial size the pipeline returns; None when it keeps the input size.

    Example:
        >>> pipeline = build_training_augmentation((64, 64, 64), AugmentationConfig())
        >>> image, seg = pipeline(image, seg, np.random.default_rng(0))
    """

    def __init__(self, stages: Sequence[Stage] = (),
                 input_patch_size: tuple[int, int, int] | None = None,
                 patch_size: tuple[int, int, int] | None = None) -> None:
        self.stages = list(stages)
        self.input_patch_size = input_patch_size
        self.patch_size = patch_size

    def crop_size(self, patch_size: Sequence[int]) -> tuple[int, int, int]:
        """How large a crop to feed in so that ``patch_size`` comes out.

        Raises:
            ConfigError: if the pipeline was built for another patch size.
        """
        wanted = tuple(int(p) for p in patch_size)
        if self.patch_size is not None and tuple(self.patch_size) != wanted:
            raise ConfigError(f"The augmentation pipeline returns patches of {self.patch_size}, "
                              f"but batches of {wanted} were requested. Build it with "
                              f"build_training_augmentation({wanted}, ...).")
        return self.input_patch_size or wanted  # type: ignore[return-value]

    def __call__(self, image: np.ndarray, seg: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        for stage in self.stages:
            image, seg = stage(image, seg, rng)
        return image, seg


class _SeededTransforms:
    """A batchgenerators Compose run with the global random states seeded from ``rng``."""

    def __init__(self, transforms: list[Any]) -> None:
        self.compose = Compose(transforms)

    def __call__(self, image: np.ndarray, seg: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        seed = int(rng.integers(2**32))
        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed(seed)
        random.seed(seed)
        try:
            out = self.compose(data=image, seg=seg)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        return out["data"], out["seg"]


class _InPlane:
    """Runs a 2D stage on every z slice: (B, C, z, y, x) is seen as (B, C*z, y, x).

    All slices of a sample share the drawn transform, so the volume is rotated and scaled in the
    (y, x) plane only: nnU-Net's "dummy 2D" augmentation for anisotropic patches.
    """

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def __call__(self, image: np.ndarray, seg: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        b, c, z = image.shape[:3]
        flat_image, flat_seg = self.stage(image.reshape(b, c * z, *image.shape[3:]),
                                          seg.reshape(b, seg.shape[1] * z, *seg.shape[3:]), rng)
        return (flat_image.reshape(b, c, z, *flat_image.shape[2:]),
                flat_seg.reshape(b, seg.shape[1], z, *flat_seg.shape[2:]))


def is_anisotropic_patch(patch_size: Sequence[int], threshold: float = 3.0) -> bool:
    """True when z is so much shorter than the largest axis that rotations stay in-plane.

    nnU-Net's rule (``max(patch) / patch[0] > 3``): rotating a 32x128x128 patch out of plane
    would mix a few thick slices into in-plane directions and needs a far larger crop along z.
    """
    return max(patch_size) / patch_size[0] > threshold


def _rotations(degrees: float, dim: int) -> np.ndarray:
    """Rotation matrices on a grid of angles within +-degrees, batchgenerators' conventions."""
    angles = np.deg2rad(np.linspace(-degrees, degrees, _ANGLE_STEPS[dim]))
    cos, sin = np.cos(angles), np.sin(angles)
    one, zero = np.ones_like(angles), np.zeros_like(angles)
    if dim == 2:
        return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cos, -sin], -1),
                   np.stack([zero, sin, cos], -1)], -2)
    ry = np.stack([np.stack([cos, zero, sin], -1), np.stack([zero, one, zero], -1),
                   np.stack([-sin, zero, cos], -1)], -2)
    rz = np.stack([np.stack([cos, -sin, zero], -1), np.stack([sin, cos, zero], -1),
                   np.stack([zero, zero, one], -1)], -2)
    return (rx[:, None, None] @ ry[None, :, None] @ rz[None, None, :]).reshape(-1, 3, 3)


def required_input_size(patch_size: Sequence[int], rotation_degrees: float,
                        max_scale: float) -> tuple[int, ...]:
    """The smallest crop that covers ``patch_size`` after any rotation and zoom-out in range.

    batchgenerators maps output coordinate c to input ``scale * (c @ R)``, so the half-extent
    along axis i is ``scale * sum_j |R[j, i]| * (patch_j - 1) / 2``; the worst case is searched on
    a grid of angles. The margin is made even so the unrotated crop is exactly centred (an odd
    margin would resample every sample at half-voxel offsets).
    """
    patch = np.asarray(patch_size, dtype=float)
    rotations = _rotations(min(rotation_degrees, 180.0), len(patch))
    extent = np.max(np.abs(rotations).transpose(0, 2, 1) @ (patch - 1), axis=0)
    needed = np.ceil(max(max_scale, 1.0) * extent - 1e-6).astype(int) + 1
    margin = np.maximum(needed - patch.astype(int), 0)
    margin += margin % 2
    return tuple(int(p + m) for p, m in zip(patch.astype(int), margin))


def _spatial_stage(patch_size: tuple[int, int, int], config: AugmentationConfig
                   ) -> tuple[Stage, tuple[int, int, int]]:
    """The rotation / scaling / elastic stage and the crop size it needs."""
    in_plane = is_anisotropic_patch(patch_size, config.anisotropy_threshold)
    degrees = 0.0
    if config.rotation_probability > 0:
        degrees = config.in_plane_rotation_degrees if in_plane else config.rotation_degrees
    max_scale = config.scale_range[1] if config.scale_probability > 0 else 1.0
    out_size = patch_size[1:] if in_plane else patch_size
    angle = (-np.deg2rad(degrees), np.deg2rad(degrees))
    transform = SpatialTransform(
        list(out_size), patch_center_dist_from_border=None,
        do_elastic_deform=config.elastic_probability > 0, alpha=config.elastic_alpha,
        sigma=config.elastic_sigma, p_el_per_sample=config.elastic_probability,
        do_rotation=config.rotation_probability > 0, angle_x=angle,
        angle_y=(0.0, 0.0) if in_plane else angle, angle_z=(0.0, 0.0) if in_plane else angle,
        p_rot_per_sample=config.rotation_probability, p_rot_per_axis=1,
        do_scale=config.scale_probability > 0, scale=config.scale_range,
        p_scale_per_sample=config.scale_probability,
        border_mode_data="constant", border_cval_data=0, order_data=config.image_order,
        border_mode_seg="constant", border_cval_seg=0, order_seg=config.label_order,
        random_crop=False)
    input_size = required_input_size(out_size, degrees, max_scale)
    if in_plane:
        return _InPlane(_SeededTransforms([transform])), (patch_size[0], *input_size)
    return _SeededTransforms([transform]), input_size  # type: ignore[return-value]


def _intensity_transforms(config: AugmentationConfig, in_plane: bool) -> list[Any]:
    """nnU-Net's intensity transforms, in nnU-Net's order (before mirroring)."""
    return [
        GaussianNoiseTransform(config.noise_variance, p_per_sample=config.noise_probability),
        GaussianBlurTransform(config.blur_sigma, different_sigma_per_channel=True,
                              p_per_sample=config.blur_probability, p_per_channel=0.5),
        BrightnessMultiplicativeTransform(config.brightness_range,
                                          p_per_sample=config.brightness_probability),
        ContrastAugmentationTransform(config.contrast_range,
                                      p_per_sample=config.contrast_probability),
        SimulateLowResolutionTransform(config.low_resolution_zoom, per_channel=True,
                                       p_per_channel=0.5, order_downsample=0, order_upsample=3,
                                       p_per_sample=config.low_resolution_probability,
                                       ignore_axes=(0,) if in_plane else None),
        GammaTransform(config.gamma_range, True, True, retain_stats=True,
                       p_per_sample=config.gamma_inverted_probability),
        GammaTransform(config.gamma_range, False, True, retain_stats=True,
                       p_per_sample=config.gamma_probability),
    ]


def build_training_augmentation(patch_size: Sequence[int],
                                config: AugmentationConfig | None = None
                                ) -> AugmentationPipeline:
    """nnU-Net's augmentation for ``patch_size`` (z, y, x), plus the cross-modality ones.

    Order: rotation / scaling (elastic) from an enlarged crop to the patch; class-aware
    location-scale (its class masks must match the final label); GIN (with IPA) and intensity
    inversion; noise, blur, brightness, contrast, low resolution, gamma (inverted and plain);
    mirroring. Stages whose probabilities are all zero are left out. Anisotropic patches
    (:func:`is_anisotropic_patch`) rotate and scale in the (y, x) plane only, by up to
    ``in_plane_rotation_degrees``, and never simulate low resolution along z.

    Raises:
        ConfigError: if ``patch_size`` is not three positive integers.
    """
    config = config or AugmentationConfig()
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or min(patch) < 1:
        raise ConfigError(f"patch_size: expected three positive sizes (z, y, x), found "
                          f"{list(patch_size)}.")
    in_plane = is_anisotropic_patch(patch, config.anisotropy_threshold)
    stages: list[Stage] = []
    input_size = patch
    if max(config.rotation_probability, config.scale_probability, config.elastic_probability) > 0:
        spatial, input_size = _spatial_stage(patch, config)  # type: ignore[arg-type]
        stages.append(spatial)
    if config.location_scale_probability > 0:
        stages.append(LocationScaleAugmentation(config.location_scale_probability,
                                                config.location_scale_class_aware_probability,
                                                config.location_scale_blend_voxels))
    if max(config.gin_probability, config.inversion_probability) > 0:
        stages.append(IntensityAugmentation(config.gin_probability, config.inversion_probability,
                                            config.ipa_probability))
    transforms = [t for t in _intensity_transforms(config, in_plane) if t.p_per_sample > 0]
    if config.mirror_axes:
        transforms.append(MirrorTransform(tuple(config.mirror_axes)))
    if transforms:
        stages.append(_SeededTransforms(transforms))
    return AugmentationPipeline(stages, input_size, patch)  # type: ignore[arg-type]


def build_validation_augmentation() -> AugmentationPipeline:
    """The identity: validation patches are cropped, never augmented."""
    return AugmentationPipeline()
