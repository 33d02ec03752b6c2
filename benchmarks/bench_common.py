"""Pieces the experiment scripts share: the generated example workspace and one pre-training run.

Not a benchmark itself; the scripts in this folder import it (they run as ``python
benchmarks/NAME.py``, which puts this folder on the import path).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the memory benchmarks' workers import this module
    from swinfuse_auto.api import PreprocessResult
    from swinfuse_auto.plans.schema import Plan
    from swinfuse_auto.preprocessing.cache import CaseStore

DATASET = "Dataset990_SwinfuseExample"


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
