"""Modality-agnostic intensity augmentation: GIN random convolutions and intensity inversion.

Global Intensity Non-linear augmentation (GIN; Ouyang et al., "Causality-inspired single-source
domain generalization", 2021) passes an image through a freshly drawn shallow convolution network
(4 layers, 2 hidden channels, kernels 1 or 3, N(0, 1) weights and biases, LeakyReLU between),
blends the result with the input by alpha ~ U(0, 1) and rescales it to the input's Frobenius norm.
Shapes and structures survive, while the intensity mapping (and so the apparent modality) changes
at random, which is what a model must ignore to carry CT features over to MR and back. Inversion
(flipping intensities within their range) is the cheapest such mapping: bright bone in CT becomes
dark as in many MR sequences.

Interventional pseudo-correlation augmentation (IPA; the same paper) goes one step further: two
independent GIN outputs are blended through a random smooth field, ``b * GIN_1(x) + (1 - b) *
GIN_2(x)``, so the intensity mapping itself varies slowly across the image. Regions that would be
correlated with the labels only through their brightness (a bias field, an MR coil's shading, a
contrast agent's uptake) get randomly different appearance in every sample.

Each channel of each sample is treated separately (one channel is one modality). Random numbers
come only from the caller's ``numpy.random.Generator``: parameters are drawn first
(:func:`draw_gin_network`, :func:`draw_smooth_field`) and applied after (:func:`apply_gin`), so
a seed reproduces them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from swinfuse_auto.errors import ConfigError

_EPS = 1e-6


@dataclass(frozen=True)
class GinNetwork:
    """One random shallow network and its blend weight.

    Attributes:
        weights: per layer, (out_channels, in_channels, k, k, k) float32.
        biases: per layer, (out_channels,) float32.
        alpha: weight of the network's output in the blend with the input.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    alpha: float


def check_gin_shape(layers: int, hidden_channels: int, kernel_sizes: Sequence[int]) -> None:
    """Reject GIN shapes that cannot keep the image size or have no hidden layer.

    Raises:
        ConfigError: if ``layers`` < 2, ``hidden_channels`` < 1 or a kernel size is even.
    """
    if layers < 2 or hidden_channels < 1 or not kernel_sizes \
            or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
        raise ConfigError(f"GIN needs layers >= 2, hidden_channels >= 1 and odd kernel sizes "
                          f"(so the shape is kept); found layers={layers}, hidden_channels="
                          f"{hidden_channels}, kernel_sizes={list(kernel_sizes)}.")


def draw_gin_network(rng: np.random.Generator, layers: int = 4, hidden_channels: int = 2,
                     kernel_sizes: Sequence[int] = (1, 3)) -> GinNetwork:
    """Draw a single-channel-in, single-channel-out GIN network.

    Raises:
        ConfigError: if ``layers`` < 2, ``hidden_channels`` < 1 or a kernel size is even.
    """
    check_gin_shape(layers, hidden_channels, kernel_sizes)
    widths = [1] + [hidden_channels] * (layers - 1) + [1]
    weights, biases = [], []
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        k = int(rng.choice(kernel_sizes))
        weights.append(rng.standard_normal((c_out, c_in, k, k, k)).astype(np.float32))
        biases.append(rng.standard_normal(c_out).astype(np.float32))
    return GinNetwork(tuple(weights), tuple(biases), float(rng.uniform()))


def _conv3d_few_channels(x: torch.Tensor, weight: np.ndarray, bias: np.ndarray) -> torch.Tensor:
    """'Same' 3D convolution of (C_in, z, y, x) as a sum of shifted, scaled copies.

    With one or two channels, torch's conv3d on the CPU is 5-7x slower than these k^3 * C_in *
    C_out in-place additions, which are also bitwise reproducible for any thread count.
    """
    k = weight.shape[-1]
    shape = x.shape[1:]
    padded = F.pad(x, (k // 2,) * 6)
    out = torch.from_numpy(np.repeat(bias, np.prod(shape)).reshape(-1, *shape))
    for dz, dy, dx in np.ndindex(k, k, k):
        view = padded[:, dz:dz + shape[0], dy:dy + shape[1], dx:dx + shape[2]]
        for o, i in np.ndindex(weight.shape[:2]):
            out[o].add_(view[i], alpha=float(weight[o, i, dz, dy, dx]))
    return out


def apply_gin(image: np.ndarray, network: GinNetwork) -> np.ndarray:
    """Apply ``network`` to one (z, y, x) image; the result has the image's shape and norm."""
    x = torch.from_numpy(np.array(image, dtype=np.float32))[None]
    out = x
    last = len(network.weights) - 1
    for i, (weight, bias) in enumerate(zip(network.weights, network.biases)):
        out = _conv3d_few_channels(out, weight, bias)
        if i < last:
            out = F.leaky_relu(out)
    mixed = network.alpha * out + (1.0 - network.alpha) * x
    mixed *= torch.linalg.vector_norm(x) / (torch.linalg.vector_norm(mixed) + _EPS)
    return mixed[0].numpy()


def draw_smooth_field(shape: Sequence[int], rng: np.random.Generator,
                      control_points: int = 4) -> np.ndarray:
    """A random field in [0, 1] varying slowly over ``shape``: uniform values on a coarse grid of
    ``control_points`` per axis (fewer along short axes), interpolated trilinearly."""
    coarse = [max(2, min(control_points, int(s) // 8 + 1)) for s in shape]
    grid = torch.from_numpy(rng.uniform(0.0, 1.0, coarse).astype(np.float32))[None, None]
    field = F.interpolate(grid, size=tuple(int(s) for s in shape), mode="trilinear",
                          align_corners=True)
    return field[0, 0].numpy()


def apply_ipa(image: np.ndarray, first: GinNetwork, second: GinNetwork,
              field: np.ndarray) -> np.ndarray:
    """IPA: two GIN outputs blended by ``field`` (1: the first, 0: the second)."""
    return field * apply_gin(image, first) + (1.0 - field) * apply_gin(image, second)


def invert_intensity(image: np.ndarray) -> np.ndarray:
    """Mirror intensities within their range: min and max swap, the range is kept."""
    return (image.max() + image.min()) - image


class IntensityAugmentation:
    """Augmentation stage applying inversion and GIN, each per sample and channel at random.

    A stage of :class:`swinfuse_auto.data.augmentation.AugmentationPipeline`: it takes and
    returns (image (B, C, z, y, x) float32, seg) and passes ``seg`` through untouched.

    Args:
        gin_probability: chance that a channel of a sample goes through a random GIN network.
        inversion_probability: chance that it is inverted first.
        ipa_probability: chance that a GIN-augmented channel blends two GIN outputs through a
            random smooth field (IPA) instead of taking one.
        layers, hidden_channels, kernel_sizes: the GIN network's shape.

    Raises:
        ConfigError: if a probability is outside [0, 1] or the GIN shape is invalid.

    Example:
        >>> stage = IntensityAugmentation(gin_probability=1.0)
        >>> image, seg = stage(image, seg, np.random.default_rng(0))
    """

    def __init__(self, gin_probability: float = 0.3, inversion_probability: float = 0.0,
                 ipa_probability: float = 0.0, layers: int = 4, hidden_channels: int = 2,
                 kernel_sizes: Sequence[int] = (1, 3)) -> None:
        for name, p in (("gin_probability", gin_probability),
                        ("inversion_probability", inversion_probability),
                        ("ipa_probability", ipa_probability)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"IntensityAugmentation {name}: expected a probability in "
                                  f"[0, 1], found {p}.")
        check_gin_shape(layers, hidden_channels, kernel_sizes)
        self.gin_probability = gin_probability
        self.inversion_probability = inversion_probability
        self.ipa_probability = ipa_probability
        self.layers = layers
        self.hidden_channels = hidden_channels
        self.kernel_sizes = tuple(kernel_sizes)

    def __call__(self, image: np.ndarray, seg: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        out = np.array(image, dtype=np.float32)
        for b in range(out.shape[0]):
            for c in range(out.shape[1]):
                if rng.uniform() < self.inversion_probability:
                    out[b, c] = invert_intensity(out[b, c])
                if rng.uniform() < self.gin_probability:
                    out[b, c] = self._gin(out[b, c], rng)
        return out, seg

    def _gin(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One GIN draw, or with ``ipa_probability`` two blended by a random smooth field."""
        shape = (self.layers, self.hidden_channels, self.kernel_sizes)
        network = draw_gin_network(rng, *shape)
        if self.ipa_probability <= 0 or rng.uniform() >= self.ipa_probability:
            return apply_gin(image, network)  # no draw when IPA is off: seeds replay as before
        return apply_ipa(image, network, draw_gin_network(rng, *shape),
                         draw_smooth_field(image.shape, rng))
