"""Measured cost model of one Swin-DIM UNETR training step, for the planner.

The planner fits patch and batch size to a memory budget (and, on a CPU, to a time budget) with
these functions instead of a proxy. They are pure arithmetic, without torch, so planning stays
fast. Constants come from ``benchmarks/measure_cost_model.py`` (fresh process per point, float32,
CPU, AdamW, peak RSS (VmHWM) increase over the RSS after imports):

* measured 2026-11-27 on a 2-core AMD EPYC virtual machine (23 GB, shared with other jobs; every
  point below ran while the CPU was otherwise idle), torch 2.13.0+cpu, 2 threads;
* points: feature sizes 12 / 24 / 48 x crops 32x64x64, 64^3, 96^3 at batch 1, plus batch 2 and
  4 input / 8 output channels at feature 12, 64^3 (table in :data:`MEASUREMENTS`);
* memory ``c0 + 16 * params + c1 * B*V*F + c2 * B*V + 16 * B*V*(in + classes)``: 16 bytes per
  parameter (weights, gradients, AdamW's two moments) and per voxel and input/output channel
  (input, logits, softmax and its gradient) are known rather than fitted; ``c1`` covers the
  feature maps of encoder and decoder, ``c2`` the window-attention probabilities kept for the
  backward pass, whose size depends on the heads (fixed per stage) and not on F;
* CPU time ``a0 + a1 * B*V*F + a2 * B*V*F^2``, non-negative least squares (a0 came out 0).

Memory fits every measured point within -10% / +7%, time within -19% / +40% (the model
underestimates F = 12 steps by up to a fifth and overestimates small F = 48 crops). Batch and
channel counts enter only through B*V and the known 16-byte term, and the batch-2 and
4-in/8-class points sit within -10% like the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from swinfuse_auto.networks.architecture import SwinArchitecture

MEMORY_CONSTANT_BYTES = 2.542e8
MEMORY_BYTES_PER_VOXEL_FEATURE = 95.72
MEMORY_BYTES_PER_VOXEL = 1466.0
STEP_SECONDS_CONSTANT = 0.0
STEP_SECONDS_PER_VOXEL_FEATURE = 4.497e-7
STEP_SECONDS_PER_VOXEL_FEATURE2 = 1.778e-9

#: Bytes per parameter during training: float32 weights, gradients and AdamW's two moments.
BYTES_PER_PARAMETER = 16
#: Bytes per voxel and input or output channel: input, logits, softmax and its gradient.
BYTES_PER_VOXEL_CHANNEL = 16
#: GPU activations under bf16 autocast relative to the CPU float32 measurement (derived, see
#: :func:`estimate_training_memory_gb`).
GPU_ACTIVATION_SCALE = 0.6
#: CUDA context and cuDNN/cuBLAS workspaces, outside torch's allocator but on the device.
GPU_CONTEXT_BYTES = 0.75e9

#: (feature size, crop zyx, batch, in, classes, peak bytes, step seconds, CPU pressure % during
#: the point) as measured; the script leaves points above 50% pressure out of the time fit.
MEASUREMENTS: tuple[tuple[int, tuple[int, int, int], int, int, int, float, float, int], ...] = (
    (12, (32, 64, 64), 1, 1, 2, 6.861e+08, 0.838, 0),
    (12, (64, 64, 64), 1, 1, 2, 1.117e+09, 1.8, 0),
    (12, (96, 96, 96), 1, 1, 2, 2.529e+09, 6.15, 0),
    (12, (64, 64, 64), 2, 1, 2, 1.834e+09, 2.73, 0),
    (12, (64, 64, 64), 1, 4, 8, 1.172e+09, 1.83, 0),
    (24, (32, 64, 64), 1, 1, 2, 9.466e+08, 1.37, 0),
    (24, (64, 64, 64), 1, 1, 2, 1.468e+09, 2.43, 0),
    (24, (96, 96, 96), 1, 1, 2, 3.912e+09, 9.76, 0),
    (48, (32, 64, 64), 1, 1, 2, 2.046e+09, 2.41, 0),
    (48, (64, 64, 64), 1, 1, 2, 2.657e+09, 5.46, 0),
    (48, (96, 96, 96), 1, 1, 2, 6.707e+09, 23.4, 1),
)


def count_parameters(arch: SwinArchitecture) -> int:
    """Parameters of the Swin-DIM UNETR for ``arch``, by formula (no torch, no allocation).

    Kept in step with the modules by a test that compares it with the built network.
    """
    fs, cin, w = arch.feature_size, arch.in_channels, arch.window_size
    total = fs * cin * arch.patch_embed_stride ** 3 + fs  # patch embedding
    total += _dim_parameters(fs, arch.dim_parts)
    for c, depth, heads in zip(arch.stage_channels, arch.depths, arch.num_heads):
        total += depth * (12 * c * c + 13 * c + (2 * w - 1) ** 3 * heads)  # Swin blocks
        total += 16 * c * c + 16 * c  # patch merging: LayerNorm(8c) and Linear(8c, 2c)
    widths = [fs * 2 ** i for i in range(len(arch.depths) + 1)]
    total += _res_block(cin, fs) + _res_block(widths[-1], widths[-1])
    total += sum(_res_block(c, c) for c in widths[:-2])
    total += sum(8 * a * b + _res_block(2 * b, b) for a, b in zip(widths[1:], widths[:-1]))
    total += 8 * fs * fs + _res_block(2 * fs, fs)  # last up-sampling block
    return total + fs * arch.num_classes + arch.num_classes  # 1x1 head


def _res_block(cin: int, cout: int) -> int:
    return 27 * cin * cout + 27 * cout * cout + (cin * cout if cin != cout else 0)


def _dim_parameters(c: int, parts: frozenset[str]) -> int:
    hidden = max(4, c // 2)
    sizes = {"style": c,
             "saliency": 2 * c + c * hidden + hidden + hidden + 1 + c,
             "attention": 2 * c + 4 * c * c + 4 * c}
    return sum(sizes[p] for p in parts)


def _activation_bytes(arch: SwinArchitecture, voxels: float) -> float:
    return voxels * (MEMORY_BYTES_PER_VOXEL_FEATURE * arch.feature_size + MEMORY_BYTES_PER_VOXEL
                     + BYTES_PER_VOXEL_CHANNEL * (arch.in_channels + arch.num_classes))


def estimate_training_memory_gb(arch: SwinArchitecture, patch_size_zyx: Sequence[int],
                                batch_size: int, device: str = "cuda") -> float:
    """Peak memory (GB, 1e9 bytes) of one training step at this patch and batch size.

    On a CPU this is the measured model (float32). On a GPU it is *derived, not measured* (the
    constants were fitted on a CPU): parameters and optimiser state stay float32 (16 bytes per
    parameter), activations are scaled by :data:`GPU_ACTIVATION_SCALE` = 0.6 because bf16
    autocast stores convolution and linear outputs in 2 bytes while normalisations, softmax and
    the loss stay float32, and :data:`GPU_CONTEXT_BYTES` is added for the CUDA context and
    library workspaces. The CPU constant (allocator and runtime overhead of the process) is
    left out on a GPU. Check a new GPU plan once with ``torch.cuda.max_memory_allocated``.

    Raises:
        PlanError: the patch size does not fit the encoder (see ``check_input_size``).
    """
    arch.check_input_size(patch_size_zyx)
    voxels = float(batch_size * math.prod(patch_size_zyx))
    params = BYTES_PER_PARAMETER * count_parameters(arch)
    if device == "cpu":
        total = MEMORY_CONSTANT_BYTES + params + _activation_bytes(arch, voxels)
    else:
        total = GPU_CONTEXT_BYTES + params + GPU_ACTIVATION_SCALE * _activation_bytes(arch, voxels)
    return total / 1e9


def estimate_step_seconds_cpu(arch: SwinArchitecture, patch_size_zyx: Sequence[int],
                              batch_size: int) -> float:
    """Wall seconds of one float32 training step on the 2-core CPU the constants came from.

    Scale by the core count ratio for a bigger machine only roughly: small 3D convolutions and
    window attention are memory-bound and do not scale linearly.

    Raises:
        PlanError: the patch size does not fit the encoder.
    """
    arch.check_input_size(patch_size_zyx)
    bvf = float(batch_size * math.prod(patch_size_zyx)) * arch.feature_size
    return (STEP_SECONDS_CONSTANT + STEP_SECONDS_PER_VOXEL_FEATURE * bvf
            + STEP_SECONDS_PER_VOXEL_FEATURE2 * bvf * arch.feature_size)


# -- inference -----------------------------------------------------------------------------------
#: Peak memory of one inference forward pass (batch 1, ``torch.inference_mode``, freed memory
#: kept in the heap as ``predict`` does) over the memory before it, per precision:
#: ``c0 + V * (c1 * F + c2)`` bytes for a tile of V voxels. Measured by
#: ``benchmarks/measure_inference_cost.py`` on 2026-12-02 (2-core AMD EPYC with AVX512_BF16,
#: torch 2.13.0+cpu, 1 thread; feature sizes 12 and 24, tiles from 32 x 160 x 160 to
#: 64 x 256 x 256 and 32 x 320 x 320): every point of at least 0.8 M voxels within -7% / +15%
#: (the smallest tile, 32 x 64 x 64, is 0.1 GB either way). The float32 fit's constant came out
#: -39 MB and is set to 0 (a slight overestimate).
INFERENCE_MEMORY: dict[str, tuple[float, float, float]] = {
    "fp32": (0.0, 52.05, 32.39),
    "bf16": (7.43e7, 22.26, 117.8),
}
#: Bytes per voxel and input or output channel around the network: the tile's input, its
#: float32 softmax, the weighted copy added to the sums, the mirrored passes' running mean.
INFERENCE_BYTES_PER_VOXEL_CHANNEL = 16


def _inference_bytes_per_voxel(arch: SwinArchitecture, precision: str) -> float:
    _, per_feature, per_voxel = INFERENCE_MEMORY[precision]
    return (per_feature * arch.feature_size + per_voxel
            + INFERENCE_BYTES_PER_VOXEL_CHANNEL * (arch.in_channels + arch.num_classes))


def estimate_inference_memory_bytes(arch: SwinArchitecture, tile_zyx: Sequence[int],
                                    batch_size: int = 1, precision: str = "fp32") -> float:
    """Memory (bytes) one inference call of ``batch_size`` tiles needs beyond the loaded model.

    Measured on a CPU; on a GPU under bf16 autocast the "bf16" constants are an upper bound
    (activations are stored in 2 bytes there as well), not a measurement.

    Raises:
        KeyError: an unknown precision (use "fp32" or "bf16").
    """
    voxels = float(batch_size * math.prod(tile_zyx))
    return INFERENCE_MEMORY[precision][0] + voxels * _inference_bytes_per_voxel(arch, precision)


def max_inference_tile_voxels(arch: SwinArchitecture, budget_bytes: float,
                              batch_size: int = 1, precision: str = "fp32") -> int:
    """The largest tile (voxels) whose inference call fits ``budget_bytes`` (0 if none does)."""
    free = budget_bytes - INFERENCE_MEMORY[precision][0]
    per_voxel = batch_size * _inference_bytes_per_voxel(arch, precision)
    return max(0, int(free / per_voxel))
