"""What the machine lets this process use, read from a fake /proc and /sys/fs/cgroup tree:
cgroup v2 and v1 CPU quotas, the tightest along the path, memory limits less usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from swinfuse_auto import machine
from swinfuse_auto.machine import (available_memory_bytes, cgroup_cpu_limit,
                                   cgroup_memory_headroom, usable_cpus)

GB = 1024**3


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _v2(tmp_path: Path, files: dict[str, str], group: str = "/user.slice/job") -> tuple[Path, Path]:
    proc = _tree(tmp_path / "proc", {"cgroup": f"0::{group}\n"}) / "cgroup"
    return proc, _tree(tmp_path / "cg", files)


def test_cgroup_v2_quota_is_the_tightest_along_the_path(tmp_path: Path) -> None:
    proc, root = _v2(tmp_path, {"user.slice/job/cpu.max": "max 100000\n",
                                "user.slice/cpu.max": "250000 100000\n",
                                "cpu.max": "800000 100000\n"})
    assert cgroup_cpu_limit(proc, root) == pytest.approx(2.5)


def test_no_quota_anywhere_is_none(tmp_path: Path) -> None:
    proc, root = _v2(tmp_path, {"user.slice/job/cpu.max": "max 100000"})
    assert cgroup_cpu_limit(proc, root) is None
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path / "missing") is None  # not Linux


@pytest.mark.parametrize("text", ["garbage", "100000", "x 100000", "-1 100000", ""])
def test_malformed_cpu_max_is_ignored(tmp_path: Path, text: str) -> None:
    proc, root = _v2(tmp_path, {"user.slice/job/cpu.max": text})
    assert cgroup_cpu_limit(proc, root) is None


def test_cgroup_v1_quota_in_the_cpu_controller_folder(tmp_path: Path) -> None:
    proc = _tree(tmp_path / "proc", {"cgroup": "12:memory:/docker/abc\n"
                                               "4:cpu,cpuacct:/docker/abc\n"
                                               "1:name=systemd:/docker/abc\n"}) / "cgroup"
    root = _tree(tmp_path / "cg", {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000",
                                   "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
                                   "cpu,cpuacct/docker/cpu.cfs_quota_us": "-1",
                                   "cpu,cpuacct/docker/cpu.cfs_period_us": "100000",
                                   "memory/docker/abc/memory.limit_in_bytes": str(4 * GB),
                                   "memory/docker/abc/memory.usage_in_bytes": str(1 * GB),
                                   "memory/memory.limit_in_bytes": str(2**63 - 4096)})
    assert cgroup_cpu_limit(proc, root) == pytest.approx(1.5)
    assert cgroup_memory_headroom(proc, root) == 3 * GB  # the v1 "no limit" root is ignored


def test_usable_cpus_rounds_the_quota_up_and_never_exceeds_the_affinity(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc, root = _v2(tmp_path, {"cpu.max": "150000 100000"}, group="/")
    monkeypatch.setattr(machine, "affinity_cpus", lambda: 64)
    assert usable_cpus(proc, root) == 2  # a 1.5-CPU quota on a 64-core host
    monkeypatch.setattr(machine, "affinity_cpus", lambda: 1)
    assert usable_cpus(proc, root) == 1
    proc, root = _v2(tmp_path / "none", {}, group="/")
    monkeypatch.setattr(machine, "affinity_cpus", lambda: 8)
    assert usable_cpus(proc, root) == 8


def test_usable_cpus_on_this_machine_is_within_the_affinity_mask() -> None:
    assert 1 <= usable_cpus() <= machine.affinity_cpus()


def test_available_memory_is_memavailable_capped_by_the_cgroup_headroom(tmp_path: Path) -> None:
    meminfo = _tree(tmp_path / "p", {"meminfo": "MemTotal: 67108864 kB\n"
                                                "MemAvailable: 33554432 kB\n"}) / "meminfo"
    proc, root = _v2(tmp_path, {"user.slice/job/memory.max": str(8 * GB),
                                "user.slice/job/memory.current": str(6 * GB),
                                "user.slice/memory.max": "max",
                                "user.slice/memory.current": str(7 * GB)})
    assert available_memory_bytes(meminfo, proc, root) == 2 * GB
    no_limit, _ = _v2(tmp_path / "x", {})
    assert available_memory_bytes(meminfo, no_limit, tmp_path / "x" / "cg") == 32 * GB
    assert available_memory_bytes(tmp_path / "none", no_limit, tmp_path / "none") is None
