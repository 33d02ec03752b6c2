"""Device choice and CPU run-time settings: threads, the allocator, autocast.

``auto`` takes a GPU when there is one, and nothing anywhere assumes CUDA. On a CPU, two process
settings decide inference speed as much as the network does, and both are measured, not assumed
(README, "predict"):

* **Threads.** torch starts one intra-op thread per core it sees; in a container whose cgroup
  quota allows 2 of 64 host cores that is 64 threads in 2 cores' worth of time.
  :func:`configure_cpu_threads` caps them at :func:`swinfuse_auto.machine.usable_cpus`.
* **Freed memory.** glibc returns large freed blocks to the kernel at once (``munmap``) and
  every new block is page-faulted and zeroed again: on a 2-core machine 39% of the CPU time of
  a sliding window was system time, and a 32 x 512 x 512 forward pass took 31.5 s instead of
  22.8 s. :func:`reuse_freed_memory` keeps freed blocks in the heap while it is active.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import platform
import threading
from collections.abc import Iterator

import torch

from swinfuse_auto.machine import usable_cpus
from swinfuse_auto.errors import ConfigError

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
#: What :func:`reuse_freed_memory` restores: glibc's largest dynamic mmap threshold (32 MiB on
#: 64-bit) and twice that for trimming, the values a long-running process settles at anyway.
_RESTORED_MMAP_THRESHOLD = 32 * 1024 * 1024
_RESTORED_MMAP_MAX = 65536
_allocator_lock = threading.Lock()
_allocator_depth = 0


def choose_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The torch device for ``--device`` (``cuda`` picks this process's GPU under torchrun)."""
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ConfigError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, found '{name}'.")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but no CUDA GPU is visible to torch. "
                              "Use --device cpu (or auto), or install a CUDA build of torch.")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that support it; float32 for training on the CPU.

    Inference on a CPU decides by measurement instead
    (:mod:`swinfuse_auto.inference.calibration`): bf16 halves a forward pass on CPUs with
    AVX512_BF16 or AMX and slows it down on those without.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads for CPU work; returns the count in use.

    Args:
        threads: an exact count; None keeps torch's count but caps it at the cores this process
            may use (affinity and cgroup quota), never raising it: a caller that chose fewer
            threads (``torch.set_num_threads(1)``) keeps them.

    Raises:
        ConfigError: ``threads`` below 1.
    """
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}.")
    wanted = threads if threads is not None else min(torch.get_num_threads(), usable_cpus())
    if wanted != torch.get_num_threads():
        logger.info("torch threads: %d -> %d", torch.get_num_threads(), wanted)
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """While active, glibc keeps freed memory for reuse instead of unmapping it (no-op elsewhere).

    Large blocks come from the heap rather than from fresh ``mmap`` calls, and the heap is never
    trimmed, so each tile's activations reuse the pages of the previous one instead of being
    page-faulted and zeroed again. On exit the usual behaviour returns (with the thresholds a
    long-running process reaches anyway) and the free heap is handed back (``malloc_trim``).
    Peak memory is the same; the process keeps its peak until the block ends.
    """
    global _allocator_depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _allocator_lock:  # nested or concurrent blocks: the outermost one restores
        _allocator_depth += 1
        if _allocator_depth == 1:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, -1)
    try:
        yield
    finally:
        with _allocator_lock:
            _allocator_depth -= 1
            if _allocator_depth == 0:
                libc.mallopt(_M_MMAP_MAX, _RESTORED_MMAP_MAX)
                libc.mallopt(_M_MMAP_THRESHOLD, _RESTORED_MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, 2 * _RESTORED_MMAP_THRESHOLD)
                libc.malloc_trim(0)
