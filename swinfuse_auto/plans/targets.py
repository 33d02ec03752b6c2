"""Which device and memory budget a plan is sized for."""

from __future__ import annotations

import os
from pathlib import Path

from swinfuse_auto.plans.schema import TargetDevice

#: Share of the machine's RAM a CPU training run may use: the rest is for the data loader
#: workers, the OS page cache of the memory-mapped cases and whatever else runs there.
CPU_RAM_SHARE = 0.4
CPU_BUDGET_CAP_GB = 16.0
#: A CPU plan keeps one training step under this many seconds, so that a demo or test run makes
#: progress; memory alone would allow patches that take minutes per step on two cores.
CPU_STEP_SECONDS = 5.0


def machine_ram_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def choose_target(gpu_memory_gb: float | None = None, device: str = "auto") -> TargetDevice:
    """``--gpu-memory-gb`` wins; else the visible GPU (when device allows it); else the CPU."""
    if gpu_memory_gb is not None:
        return TargetDevice("cuda", float(gpu_memory_gb))
    no_driver = not Path("/proc/driver/nvidia").exists() and not any(Path("/dev").glob("nvidia*"))
    if device == "cuda" or (device == "auto" and not no_driver):
        import torch  # only where a GPU may exist: importing torch costs the parent 0.2 GiB

        if torch.cuda.is_available():
            total = torch.cuda.get_device_properties(0).total_memory / 1024**3
            return TargetDevice("cuda", round(total * 0.9, 1))
    return TargetDevice("cpu", round(min(machine_ram_gb() * CPU_RAM_SHARE, CPU_BUDGET_CAP_GB), 1))
