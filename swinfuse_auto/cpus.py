"""How many CPU cores this process may really use: affinity and cgroup quota, not the host's count.

``os.cpu_count()`` counts the host's cores. A container limited to 2 CPUs by a cgroup quota on a
64-core host still sees 64, and a library that starts 64 threads there runs them in 2 cores'
worth of time slices: the threads wait for each other at every parallel region and inference
slows down several-fold. The usable count is the smaller of

* the CPUs of the scheduler affinity mask (``taskset``, ``--cpuset-cpus``, Slurm's binding), and
* the cgroup CPU quota (``docker --cpus``, Kubernetes CPU limits): cgroup v2 ``cpu.max`` or
  cgroup v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``, the tightest along the cgroup path,
  rounded up.

Pure Python and Linux files only, so any layer may ask (torch is not imported here).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where there is no mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota_v2(folder: Path) -> float | None:
    """``cpu.max`` of one cgroup v2 folder: ``"max 100000"`` (none) or ``"200000 100000"``."""
    text = _read(folder / "cpu.max")
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        q, p = float(quota or "-1"), float(period or "0")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _cgroup_folders(proc_cgroup: Path, root: Path) -> list[tuple[Path, bool]]:
    """(folder, is_v2) of this process's CPU cgroup and each of its parents, innermost first."""
    text = _read(proc_cgroup) or ""
    folders: list[tuple[Path, bool]] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, relative = parts
        is_v2 = controllers == ""
        if not is_v2 and "cpu" not in controllers.split(","):
            continue
        base = root if is_v2 else next(
            (root / name for name in ("cpu,cpuacct", "cpu", "cpuacct,cpu") if (root / name).is_dir()),
            root / "cpu")
        current = Path(relative)
        while True:
            folders.append((base / str(current).lstrip("/"), is_v2))
            if current == current.parent:
                break
            current = current.parent
    return folders


def cgroup_cpu_limit(proc_cgroup: Path = PROC_SELF_CGROUP, root: Path = CGROUP_ROOT
                     ) -> float | None:
    """The tightest cgroup CPU quota along this process's cgroup path, in CPUs; None if none.

    Args:
        proc_cgroup: the ``/proc/self/cgroup`` file (a parameter for tests).
        root: the cgroup file-system mount.
    """
    limits = [limit for folder, is_v2 in _cgroup_folders(proc_cgroup, root)
              if (limit := (_quota_v2(folder) if is_v2 else _quota_v1(folder))) is not None]
    return min(limits) if limits else None


def usable_cpus() -> int:
    """Cores this process may use: the affinity mask, capped by the cgroup quota (rounded up)."""
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit - 1e-9)))
    return cpus
