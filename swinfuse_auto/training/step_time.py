"""The step time the plan was sized for, against the one this machine delivers.

The planner sizes a CPU plan with a cost model measured on one 2-core machine (a step of at most
a few seconds); other CPUs, a shared machine or a GPU plan run on a CPU can be several times
slower, and every time estimate built on the cost model (the demo's budget, the plan's reasons)
is then off by as much. After the first epoch of a run the measured step time is logged next to
the estimate, with a warning when they differ by more than a factor of two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from swinfuse_auto.networks.architecture import SwinArchitecture
from swinfuse_auto.networks.cost_model import estimate_step_seconds_cpu

logger = logging.getLogger(__name__)

#: Ratio between measured and estimated step time beyond which the estimate is called off.
TOLERANCE = 2.0


def estimated_step_seconds(arch: SwinArchitecture, patch: Sequence[int], batch: int,
                           device: torch.device) -> float | None:
    """The cost model's seconds per training step on a CPU; None on other devices."""
    return estimate_step_seconds_cpu(arch, patch, batch) if device.type == "cpu" else None


class StepTimeCheck:
    """Epoch callback: log (and judge) the first epoch's seconds per step once per run.

    Args:
        estimate_seconds: the cost model's step time for this plan, or None when there is no
            estimate for the device (GPU).
        what: what a step is, for the message ("fine-tuning step of 2 x 32x64x64").
    """

    def __init__(self, estimate_seconds: float | None, what: str) -> None:
        self.estimate_seconds = estimate_seconds
        self.what = what
        self.checked = False

    def __call__(self, loop: Any, record: dict[str, float]) -> None:
        if self.checked or not loop.context.is_main:
            return
        self.checked = True
        steps = max(1, loop.settings.iterations_per_epoch)
        compute, wait = record["compute_s"] / steps, record["data_wait_s"] / steps
        measured = compute + wait
        message = (f"{self.what}: {measured:.2f} s measured ({compute:.2f} s compute, "
                   f"{wait:.2f} s waiting for data)")
        if self.estimate_seconds is None:
            logger.info("%s", message)
            return
        ratio = measured / max(self.estimate_seconds, 1e-9)
        message += f"; the plan's cost model estimated {self.estimate_seconds:.2f} s"
        if ratio > TOLERANCE or ratio < 1 / TOLERANCE:
            logger.warning("%s, %.1fx off: this machine is %s than the one the cost model was "
                           "measured on, and time estimates built on it are off by as much",
                           message, ratio, "slower" if ratio > 1 else "faster")
        else:
            logger.info("%s", message)
