"""How fast the network runs here, and in which precision: measured once, never assumed.

bf16 autocast halves a CPU forward pass where the CPU has bf16 instructions (AVX512_BF16, AMX:
2.0 s against 3.9 s for a 32 x 160 x 160 window of the feature-12 network on one thread) and
slows it down where it has not (AVX2 only: bf16 is emulated). So on a CPU, ``precision="auto"``
times one small tile in float32 and in bf16 and takes bf16 only when it is clearly faster
(:data:`BF16_MARGIN`). The decision is cached on disk per CPU model, torch version, network
width and thread count (:func:`cache_dir`), so a machine keeps one precision from run to run and
the same command gives the same result; GPUs take bf16 where supported, as training does.

The same measurement gives the speed behind the ETA that ``predict`` prints: seconds per voxel
of a forward pass at the chosen precision, timed on each run (the load of the machine changes),
on a tile of at most 64 voxels per axis. Per voxel, a forward pass costs about the same from a
32 x 64 x 64 tile up to 32 x 512 x 512 (README, "predict"), so the ETA scales it by voxels: on
the lung CT of Dataset902 (one thread, bf16) the 32 x 64 x 64 tile took 4.3 us per voxel and
the eight 32 x 288 x 288 tiles 3.8 us, and ``--dry-run`` said 72 s for a run of 84 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from swinfuse_auto.errors import ConfigError, PlanError
from swinfuse_auto.inference.options import PRECISIONS
from swinfuse_auto.io.atomic import write_json
from swinfuse_auto.networks.architecture import SwinArchitecture

logger = logging.getLogger(__name__)

#: bf16 is chosen when its forward pass takes at most this share of float32's.
BF16_MARGIN = 0.85
#: Largest calibration tile edge (voxels); the patch's edge when smaller.
CALIBRATION_EDGE = 64
CACHE_FILE = "cpu_precision.json"


def cache_dir() -> Path:
    """Where the precision decision is cached: ``$SWINFUSE_CACHE``, else
    ``$XDG_CACHE_HOME/swinfuse_auto``, else ``~/.cache/swinfuse_auto``."""
    if os.environ.get("SWINFUSE_CACHE"):
        return Path(os.environ["SWINFUSE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "swinfuse_auto"


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision == "bf16"``, nothing for float32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def calibration_shape(arch: SwinArchitecture, patch: Sequence[int]) -> tuple[int, int, int]:
    """At most :data:`CALIBRATION_EDGE` voxels per axis, within the patch, valid for the encoder."""
    shape = tuple(min(int(p), CALIBRATION_EDGE) for p in patch)
    try:
        arch.check_input_size(shape)
    except PlanError:  # e.g. a one-voxel bottleneck: the patch itself is always valid
        return tuple(int(p) for p in patch)  # type: ignore[return-value]
    return shape  # type: ignore[return-value]


def time_forward(network: nn.Module, in_channels: int, shape: Sequence[int],
                 device: torch.device, precision: str, repeats: int = 2) -> float:
    """Seconds of one forward pass (the best of ``repeats`` after one warm-up pass)."""
    x = torch.zeros((1, in_channels, *shape), device=device)
    x.normal_(generator=torch.Generator(device=device).manual_seed(0))
    best = math.inf
    with torch.inference_mode(), autocast_context(device, precision):
        for index in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            network(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if index:
                best = min(best, time.perf_counter() - started)
    return best


def _cache_key(arch: SwinArchitecture, threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    # the kernels torch dispatches to (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA can lower them
    # on the same CPU model; bf16 on AVX2 kernels is emulated and several times slower)
    isa = (f"{torch.backends.cpu.get_cpu_capability()} onednn "
           f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'all')}")
    return (f"{cpu} | {isa} | torch {torch.__version__} | feature_size {arch.feature_size} | "
            f"dim {arch.dim} | {threads} threads")


def _read_cache() -> dict[str, dict[str, float | str]]:
    try:
        data = json.loads((cache_dir() / CACHE_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, entry: dict[str, float | str]) -> None:
    data = _read_cache()
    data[key] = entry
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        write_json(cache_dir() / CACHE_FILE, data)
    except OSError as exc:  # a read-only home: decide again next time
        logger.warning("could not cache the CPU precision decision in %s: %s", cache_dir(), exc)


@dataclass(frozen=True)
class Calibration:
    """The precision to predict in and the measured speed at that precision.

    Attributes:
        precision: "fp32" or "bf16".
        seconds_per_voxel: one forward pass, per input voxel, at ``precision``.
        reason: how the precision was chosen (printed by ``predict``).
    """

    precision: str
    seconds_per_voxel: float
    reason: str


def calibrate(network: nn.Module, arch: SwinArchitecture, patch: Sequence[int],
              device: torch.device, precision: str = "auto") -> Calibration:
    """Choose the precision (``"auto"``: see the module notes) and time a forward pass in it.

    Raises:
        ConfigError: an unknown precision, or bf16 asked for on a GPU without bf16.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                          f"'{precision}'.")
    shape = calibration_shape(arch, patch)
    voxels = math.prod(shape)
    if device.type != "cpu" or precision != "auto":
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
            reason = f"{precision} on this GPU"
        else:
            if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise ConfigError("bf16 was asked for, but this GPU does not support it; use "
                                  "--precision fp32 or auto.")
            reason = f"{precision} as asked"
        seconds = time_forward(network, arch.in_channels, shape, device, precision)
        return Calibration(precision, seconds / voxels, reason)
    key = _cache_key(arch, torch.get_num_threads())
    cached = _read_cache().get(key)
    if cached is not None and cached.get("precision") in ("fp32", "bf16"):
        chosen = str(cached["precision"])
        seconds = time_forward(network, arch.in_channels, shape, device, chosen)
        return Calibration(chosen, seconds / voxels,
                           f"{chosen} (measured here before: bf16 {cached['bf16_s']:.3f} s, "
                           f"fp32 {cached['fp32_s']:.3f} s per {'x'.join(map(str, shape))} tile)")
    fp32 = time_forward(network, arch.in_channels, shape, device, "fp32")
    bf16 = time_forward(network, arch.in_channels, shape, device, "bf16")
    chosen = "bf16" if bf16 <= BF16_MARGIN * fp32 else "fp32"
    _write_cache(key, {"precision": chosen, "fp32_s": fp32, "bf16_s": bf16,
                       "shape": "x".join(map(str, shape))})
    reason = (f"{chosen} (measured now: bf16 {bf16:.3f} s, fp32 {fp32:.3f} s per "
              f"{'x'.join(map(str, shape))} tile)")
    return Calibration(chosen, (bf16 if chosen == "bf16" else fp32) / voxels, reason)
