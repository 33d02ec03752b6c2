"""The stages as runs: what the commands do, composed from the packages below.

:mod:`.pretraining` and :mod:`.fold_training` resolve folders, choose the recipe and run it;
:mod:`.fold_validation` predicts and scores a fold's held-out cases at the end (inference and
evaluation, which training may not import); :mod:`.invariance` measures how far a pre-trained
encoder keeps CT and MR apart. :mod:`swinfuse_auto.api` exposes them.
"""
