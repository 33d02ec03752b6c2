"""Pieces the experiment scripts share: the generated example workspace and CT, one pre-training
run, and the memory readers (one process, a process tree).

Not a benchmark itself; the scripts in this folder import it (they run as ``python
benchmarks/NAME.py``, which puts this folder on the import path).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the memory benchmarks' workers import this module
    import psutil  # the benchmark environment's, not the package's

    from swinfuse_auto.api import PreprocessResult
    from swinfuse_auto.plans.schema import Plan
    from swinfuse_auto.preprocessing.cache import CaseStore

DATASET = "Dataset990_SwinfuseExample"
GB = 1024**3


def process_memory_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in bytes.

    VmHWM, the peak RSS of this process's own address space, is used instead of
    ``getrusage().ru_maxrss``: Linux carries ru_maxrss across fork and exec, so a child started
    by a big parent would report the parent's RSS as its own peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def untrained_models() -> ModuleType:
    """``tests/helpers/untrained.py``, the writer of random-weights models in the trained-model
    format (a test helper, not package code), loaded from its file. With ``tests/`` on the
    import path instead, its folders ``swinfuse_auto``, ``planners`` and ``trainers`` (no
    ``__init__.py``) would shadow the editable install as namespace packages: the planner
    registry would come up empty."""
    name = "bench_untrained_models"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tests" / "helpers" / "untrained.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def example_workspace(work: Path, ct_cases: int, mr_cases: int, seed: int = 0,
                      device: str = "auto", planner: str = "default"
                      ) -> tuple[dict[str, str], PreprocessResult]:
    """Generate (once) and plan/preprocess the example data under ``work``; the API roots.

    Each planner gets a preprocessed root of its own (``preprocessed`` for the default one,
    ``preprocessed_<planner>`` otherwise), so their plans never replace each other.
    """
    from swinfuse_auto.api import plan_and_preprocess
    from swinfuse_auto.example_data import generate_example_dataset

    raw = work / "raw"
    if not (raw / DATASET / "dataset.json").exists():
        generate_example_dataset(raw, DATASET, ct_cases=ct_cases, mr_cases=mr_cases, seed=seed,
                                 overwrite=True)
    preprocessed = work / ("preprocessed" if planner == "default" else f"preprocessed_{planner}")
    result = plan_and_preprocess(raw / DATASET, planner=planner, device=device, num_processes=2,
                                 preprocessed=str(preprocessed))
    return {"raw": str(raw), "preprocessed": str(preprocessed)}, result


def generated_ct(raw_root: Path, name: str, shape: tuple[int, int, int],
                 spacing: tuple[float, float, float]) -> Path:
    """A dataset of one generated CT of ``shape`` voxels (z, y, x) and ``spacing`` mm, written
    once under ``raw_root/name`` and reused after: int16 Hounsfield units, as scanners write
    them, so reading and writing cost what they cost on clinical scans."""
    from swinfuse_auto.example_data import generate_example_dataset

    raw_dir = raw_root / name
    if not (raw_dir / "dataset.json").exists():
        started = time.perf_counter()
        generate_example_dataset(raw_root, name, ct_cases=1, mr_cases=0, shape=tuple(shape),
                                 spacing=tuple(spacing), overwrite=True)
        print(f"generated {raw_dir} in {time.perf_counter() - started:.0f} s")
    return raw_dir


def pretrain_on(plan: Plan, stores: list[CaseStore], output: Path, iterations: int, seed: int,
                device: str = "auto", density_weight: float | None = None,
                learning_rate: float | None = None) -> float:
    """Pre-train on exactly ``stores`` (resuming a finished or interrupted run); seconds taken.

    ``density_weight`` and ``learning_rate`` override the recipe's values (None keeps them).
    """
    from trainers.pretrain import PretrainTrainer

    changes = {name: value for name, value in (("density_matching_weight", density_weight),
                                               ("learning_rate", learning_rate))
               if value is not None}
    config = dataclasses.replace(PretrainTrainer.default_config(), seed=seed, **changes)
    start = time.perf_counter()
    PretrainTrainer(plan=plan, stores=stores, output_dir=output, config=config,
                    iterations=iterations, device=device).run(resume=True)
    return time.perf_counter() - start


class TreeSampler:
    """Peak memory of a process and its descendants, from repeated samples.

    RSS is summed over the tree every sample. A child between fork and exec counts the pages it
    shares with its parent once more (nnU-Net forks a dozen such children as it exits), so the
    *sustained* peak, the largest sum held for ``hold`` samples in a row, is kept as well; both
    are judged. Every ``pss_every``-th sample also sums PSS, which splits shared pages between
    the processes sharing them (~5 ms per process a read). The processes at the peak are kept.
    """

    def __init__(self, root: psutil.Process, pss_every: int = 3, hold: int = 3) -> None:
        self.root, self.pss_every, self.hold, self.samples = root, pss_every, hold, 0
        self.peak_rss = self.peak_single = self.peak_pss = self.most = self.sustained = 0
        self.recent: list[int] = []
        self.at_peak: list[list] = []
        self.per_second: dict[int, int] = {}

    def _members(self) -> list[psutil.Process]:
        import psutil

        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return [self.root]

    def sample(self, second: int) -> None:
        import psutil

        rows, pss = [], 0
        with_pss = self.samples % self.pss_every == 0
        for member in self._members():
            try:
                rows.append([member.pid, member.name(), member.memory_info().rss])
                pss += member.memory_full_info().pss if with_pss else 0
            except psutil.Error:  # exited between listing and reading
                continue
        self.samples += 1
        total = sum(row[2] for row in rows)
        if total > self.peak_rss:
            self.peak_rss, self.at_peak = total, [[pid, name, round(rss / GB, 3)]
                                                  for pid, name, rss in rows]
        self.peak_single = max([self.peak_single] + [row[2] for row in rows])
        self.peak_pss, self.most = max(self.peak_pss, pss), max(self.most, len(rows))
        self.per_second[second] = max(self.per_second.get(second, 0), total)
        self.recent = [*self.recent[1 - self.hold:], total]
        if len(self.recent) == self.hold:
            self.sustained = max(self.sustained, min(self.recent))


@dataclasses.dataclass
class SampledRun:
    """A command's exit, wall and CPU time, and the memory samples of its process tree."""

    returncode: int | None
    wall_s: float
    cpu_s: float
    sampler: TreeSampler
    stopped: bool  # killed at the time limit


def run_sampled(command: list[str], env: dict[str, str], log_path: Path, interval: float,
                limit_s: float | None = None,
                on_tick: Callable[[float], None] | None = None) -> SampledRun:
    """Run ``command`` (stdout and stderr to ``log_path``), sampling its tree's memory every
    ``interval`` seconds and calling ``on_tick(elapsed)`` after each sample. With ``limit_s``
    the command runs in its own process group, which is killed at the limit. CPU time is that
    of the children this process waited for, so it includes every worker the command started
    and waited for."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    stopped = False
    with log_path.open("w") as log:
        started = time.perf_counter()
        popen = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=limit_s is not None)
        sampler = TreeSampler(psutil.Process(popen.pid))
        while popen.poll() is None:
            elapsed = time.perf_counter() - started
            if limit_s is not None and elapsed >= limit_s:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
                stopped = True
                break
            sampler.sample(int(elapsed))
            if on_tick is not None:
                on_tick(elapsed)
            time.sleep(interval)
        wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return SampledRun(popen.returncode, wall, cpu, sampler, stopped)
