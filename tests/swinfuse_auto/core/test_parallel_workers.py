"""Pool workers exit when their parent dies (kill -9 runs no clean-up in the parent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from swinfuse_auto.parallel import watch_parent

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads process states from /proc")

#: A parent that runs parallel_map with 2 workers, each writing its pid and then sleeping.
PARENT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import swinfuse_auto.parallel as parallel

    if os.environ.get("NO_DEATH_SIGNAL"):  # top level: runs in the spawned workers too
        parallel._request_death_signal = lambda: None

    def sleeper(folder: str) -> None:
        Path(folder, f"{os.getpid()}.pid").write_text("")
        time.sleep(120)

    if __name__ == "__main__":
        parallel.parallel_map(sleeper, [sys.argv[1]] * 2, num_processes=2)
""")


def _status(pid: int) -> dict[str, str]:
    """Fields of /proc/PID/status; empty once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _alive(pid: int) -> bool:
    """Running or sleeping; an exited process that no one reaped yet is a zombie ("Z")."""
    state = _status(pid).get("State", "Z")
    return not state.startswith(("Z", "X"))


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("mechanism", ["death_signal_and_polling", "polling_only"])
def test_workers_exit_when_the_parent_is_killed(mechanism: str, tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if mechanism == "polling_only":
        env["NO_DEATH_SIGNAL"] = "1"
    parent = subprocess.Popen([sys.executable, str(script), str(pids_dir)], env=env)
    workers: list[int] = []
    try:
        assert _wait_for(lambda: len(list(pids_dir.glob("*.pid"))) == 2, 60), "no workers"
        workers = [int(p.stem) for p in pids_dir.glob("*.pid")]
        assert all(_status(pid).get("PPid") == str(parent.pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_for(lambda: not any(_alive(pid) for pid in workers), 5), \
            f"workers {[pid for pid in workers if _alive(pid)]} outlived their parent"
    finally:
        parent.kill()
        parent.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_watch_parent_reports_a_changed_parent_at_once() -> None:
    orphaned: list[bool] = []
    started = time.monotonic()
    watch_parent(os.getppid() + 1_000_000, interval=10.0,
                 on_orphaned=lambda: orphaned.append(True))
    assert orphaned == [True] and time.monotonic() - started < 1.0
