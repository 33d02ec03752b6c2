"""The step-time check after the first epoch: logged, and a warning when 2x off the estimate."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from swinfuse_auto.training.step_time import StepTimeCheck


def _loop() -> SimpleNamespace:
    return SimpleNamespace(context=SimpleNamespace(is_main=True),
                           settings=SimpleNamespace(iterations_per_epoch=10))


@pytest.mark.parametrize("estimate, warned", [(1.0, False), (0.4, True), (3.0, True)])
def test_measured_step_time_is_judged_against_the_estimate(
        estimate: float, warned: bool, caplog: pytest.LogCaptureFixture) -> None:
    check = StepTimeCheck(estimate, "fine-tuning step")
    with caplog.at_level(logging.INFO):
        check(_loop(), {"compute_s": 9.0, "data_wait_s": 1.0})  # 1.0 s per step
        check(_loop(), {"compute_s": 90.0, "data_wait_s": 1.0})  # later epochs: silent
    records = [r for r in caplog.records if "fine-tuning step" in r.getMessage()]
    assert len(records) == 1
    assert "1.00 s measured" in records[0].getMessage()
    assert (records[0].levelno == logging.WARNING) == warned
