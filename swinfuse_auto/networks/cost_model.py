"""Measured cost model of one Swin-DIM UNETR training step, for the planner.

The planner fits patch and batch size to a memory budget (and, on a CPU, to a time budget) with
these functions instead of a proxy. They are pure arithmetic, without torch, so planning stays
fast. Constants come from ``benchmarks/measure_cost_model.py`` (fresh process per point, float32,
CPU, AdamW, peak RSS increase over the RSS after imports):

* measured __MEASURED_ON__ on __MACHINE__, torch 2.13.0 (CPU, 2 threads);
* points: feature sizes 12 / 24 / 48 x crops 32x64x64, 64^3, 96^3 at batch 1, plus batch 2 and
  4 input / 8 output channels at feature 12, 64^3 (table in :data:`MEASUREMENTS`);
* memory ``c0 + 16 * params + c1 * B*V*F + c2 * B*V*(in + classes)`` (16 bytes per parameter:
  weights, gradients and AdamW's two moments, known rather than fitted);
* CPU time ``a0 + a1 * B*V*F + a2 * B*V*F^2``, non-negative least squares.

The fit's largest relative errors on the measured points are printed by the script.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from swinfuse_auto.networks.architecture import SwinArchitecture

MEMORY_CONSTANT_BYTES = 0.0
MEMORY_BYTES_PER_VOXEL_FEATURE = 0.0
MEMORY_BYTES_PER_VOXEL_CHANNEL = 0.0
STEP_SECONDS_CONSTANT = 0.0
STEP_SECONDS_PER_VOXEL_FEATURE = 0.0
STEP_SECONDS_PER_VOXEL_FEATURE2 = 0.0

#: Bytes per parameter during training: float32 weights, gradients and AdamW's two moments.
BYTES_PER_PARAMETER = 16
#: GPU activations under bf16 autocast relative to the CPU float32 measurement (derived, see
#: :func:`estimate_training_memory_gb`).
GPU_ACTIVATION_SCALE = 0.6
#: CUDA context and cuDNN/cuBLAS workspaces, outside torch's allocator but on the device.
GPU_CONTEXT_BYTES = 0.75e9

#: (feature size, crop zyx, batch, in, classes, peak bytes, step seconds) as measured.
MEASUREMENTS: tuple[tuple[int, tuple[int, int, int], int, int, int, float, float], ...] = ()


def count_parameters(arch: SwinArchitecture) -> int:
    """Parameters of the Swin-DIM UNETR for ``arch``, by formula (no torch, no allocation).

    Kept in step with the modules by a test that compares it with the built network.
    """
    fs, cin, w = arch.feature_size, arch.in_channels, arch.window_size
    total = fs * cin * arch.patch_size ** 3 + fs  # patch embedding
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
    return (MEMORY_BYTES_PER_VOXEL_FEATURE * voxels * arch.feature_size
            + MEMORY_BYTES_PER_VOXEL_CHANNEL * voxels * (arch.in_channels + arch.num_classes))


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
