"""Planner variants: each overrides one hook of the default planner and registers a name."""

from __future__ import annotations

from planners.default import DefaultPlanner
from swinfuse_auto.registry import PLANNERS


@PLANNERS.register("no_dim")
class NoDIMPlanner(DefaultPlanner):
    """The default plan with the domain-invariance module switched off, for ablations."""

    name = "no_dim"
    dim = "none"
