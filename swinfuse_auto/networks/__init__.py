"""Swin-DIM networks: architecture (:mod:`.architecture`), encoder (:mod:`.swin`), DIM
(:mod:`.dim`), UNETR decoder (:mod:`.unetr`), pre-training heads (:mod:`.ssl`), the builders
(:mod:`.factory`), weight transfer (:mod:`.transfer`) and the measured cost model
(:mod:`.cost_model`).

Import from the modules: the plan and the planner need only :mod:`.architecture` and
:mod:`.cost_model`, which do not import torch, and loading a plan must not pay for torch.
"""
