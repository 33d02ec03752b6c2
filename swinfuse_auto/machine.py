"""What this machine lets the process use: CPU cores and memory, limits included.

**Cores.** How many this process may really use: affinity and cgroup quota, not the host's count.

``os.cpu_count()`` counts the host's cores. A container limited to 2 CPUs by a cgroup quota on a
64-core host still sees 64, and a library that starts 64 threads there runs them in 2 cores'
worth of time slices: the threads wait for each other at every parallel region and inference
slows down several-fold. The usable count is the smaller of

* the CPUs of the scheduler affinity mask (``taskset``, ``--cpuset-cpus``, Slurm's binding), and
* the cgroup CPU quota (``docker --cpus``, Kubernetes CPU limits): cgroup v2 ``cpu.max`` or
  cgroup v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``, the tightest along the cgroup path,
  rounded up.

**Memory.** What can be allocated without swapping or meeting the out-of-memory killer: the
kernel's ``MemAvailable``, capped by the cgroup memory limit less the cgroup's usage.

Pure Python and Linux files only, so any layer may ask (torch is not imported here).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
PROC_MEMINFO = Path("/proc/meminfo")


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


def _controller_folders(proc_cgroup: Path, root: Path, controller: str,
                        v1_names: tuple[str, ...]) -> list[tuple[Path, bool]]:
    """(folder, is_v2) of this process's cgroup for ``controller`` and its parents, innermost
    first."""
    text = _read(proc_cgroup) or ""
    folders: list[tuple[Path, bool]] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, relative = parts
        is_v2 = controllers == ""
        if not is_v2 and controller not in controllers.split(","):
            continue
        base = root if is_v2 else next((root / n for n in v1_names if (root / n).is_dir()),
                                       root / v1_names[0])
        current = Path(relative)
        while True:
            folders.append((base / str(current).lstrip("/"), is_v2))
            if current == current.parent:
                break
            current = current.parent
    return folders


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
    """``cpu.cfs_quota_us / cpu.cfs_period_us`` of one cgroup v1 folder; quota -1 is none."""
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        q, p = float(quota or "-1"), float(period or "0")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_cpu_limit(proc_cgroup: Path = PROC_SELF_CGROUP, root: Path = CGROUP_ROOT
                     ) -> float | None:
    """The tightest cgroup CPU quota along this process's cgroup path, in CPUs; None if none.

    Args:
        proc_cgroup: the ``/proc/self/cgroup`` file (a parameter for tests).
        root: the cgroup file-system mount.
    """
    folders = _controller_folders(proc_cgroup, root, "cpu", ("cpu,cpuacct", "cpu", "cpuacct,cpu"))
    limits = [limit for folder, is_v2 in folders
              if (limit := (_quota_v2(folder) if is_v2 else _quota_v1(folder))) is not None]
    return min(limits) if limits else None


def usable_cpus(proc_cgroup: Path = PROC_SELF_CGROUP, root: Path = CGROUP_ROOT) -> int:
    """Cores this process may use: the affinity mask, capped by the cgroup quota (rounded up:
    a quota of 1.5 CPUs still runs two threads in parallel part of the time)."""
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit(proc_cgroup, root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit - 1e-9)))
    return cpus


def _int_file(path: Path) -> int | None:
    """An integer file's value; None where it is missing or says ``max`` (no limit)."""
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:  # "max"
        return None


def cgroup_memory_headroom(proc_cgroup: Path = PROC_SELF_CGROUP, root: Path = CGROUP_ROOT
                           ) -> int | None:
    """Bytes left under the tightest cgroup memory limit (limit - usage); None without a limit."""
    headrooms = []
    for folder, is_v2 in _controller_folders(proc_cgroup, root, "memory", ("memory",)):
        limit_file, usage_file = (("memory.max", "memory.current") if is_v2
                                  else ("memory.limit_in_bytes", "memory.usage_in_bytes"))
        limit, usage = _int_file(folder / limit_file), _int_file(folder / usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:  # v1 "no limit" is huge
            headrooms.append(max(0, limit - usage))
    return min(headrooms) if headrooms else None


def available_memory_bytes(meminfo: Path = PROC_MEMINFO, proc_cgroup: Path = PROC_SELF_CGROUP,
                           root: Path = CGROUP_ROOT) -> int | None:
    """Memory this process can still allocate: ``MemAvailable``, capped by the cgroup headroom
    (a container sees the host's ``MemAvailable``, not its own limit).

    None where neither is known (not Linux).
    """
    available = None
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    headroom = cgroup_memory_headroom(proc_cgroup, root)
    known = [v for v in (available, headroom) if v is not None]
    return min(known) if known else None
