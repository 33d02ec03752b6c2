"""Inference maths as small pure pieces: windows, Gaussian weights, aggregation, mirroring.

Everything here works on tensors already in network space (preprocessed, (C, z, y, x)); reading
cases, ensembling folds and mapping back to the raw grid are done by the callers. The common
currency is softmax probabilities, so sliding windows, mirrored passes and fold models all average
the same quantity (see :mod:`swinfuse_auto.inference.sliding_window`).
"""
