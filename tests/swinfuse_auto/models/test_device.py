"""CPU run-time settings: torch threads capped at the usable cores, freed memory kept for reuse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.models import device
from swinfuse_auto.models.device import configure_cpu_threads, reuse_freed_memory


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_threads_are_capped_at_the_usable_cores_never_raised(
        monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    monkeypatch.setattr(device, "usable_cpus", lambda: 1)  # a 1-CPU cgroup quota
    assert configure_cpu_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setattr(device, "usable_cpus", lambda: 64)
    assert configure_cpu_threads() == 1  # a caller's smaller choice stays
    assert configure_cpu_threads(2) == 2  # an explicit count wins


def test_a_thread_count_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="threads must be at least 1, got 0"):
        configure_cpu_threads(0)


def test_reuse_freed_memory_nests_and_computes_the_same() -> None:
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    with reuse_freed_memory():
        with reuse_freed_memory():
            inside = (x * 2).sum()
        again = torch.zeros(4096, 4096).sum()  # a large block, after the inner block ended
    assert float(inside) == 552.0 and float(again) == 0.0
    assert device._allocator_depth == 0
