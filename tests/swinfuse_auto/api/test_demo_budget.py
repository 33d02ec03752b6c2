"""The demo's time budget: steps chosen from the measured step time."""

from __future__ import annotations

import pytest

from swinfuse_auto.api.demo_budget import (MIN_PRETRAIN_STEPS, REAL_STEP_FACTOR, RESERVE_STEPS,
                                           StepSeconds, choose_budget)


def test_a_fast_machine_gets_the_full_budget_and_a_slow_one_fewer_steps() -> None:
    fast = choose_budget(720, StepSeconds(0.5, 1.5), 30, 24, 25)
    assert (fast.pretrain_iterations, fast.epochs) == (30, 24)
    slow = choose_budget(720, StepSeconds(2.0, 5.0), 30, 24, 25)
    assert slow.epochs < 24 and slow.expected_seconds <= 720
    # what was chosen is what the estimate adds up to, a real step costing more than a timed one
    assert slow.expected_seconds == pytest.approx(
        slow.pretrain_iterations * 5.0
        + (slow.epochs * 25 + RESERVE_STEPS) * 2.0 * REAL_STEP_FACTOR)


def test_too_little_time_still_trains_one_epoch_and_a_few_pretraining_steps() -> None:
    chosen = choose_budget(30, StepSeconds(2.0, 5.0), 30, 24, 25)
    assert (chosen.pretrain_iterations, chosen.epochs) == (MIN_PRETRAIN_STEPS, 1)
    assert chosen.expected_seconds > 30  # it says it will overrun
