"""Inference: from raw images to segmentations on the input's grid.

The maths are small pure pieces (windows, Gaussian weights, aggregation, mirroring) working on
tensors in network space; the predictor ensembles fold models on top of them, the pipeline reads,
checks and preprocesses cases and writes results, and the export maps probabilities back onto the
raw grid. The common currency is softmax probabilities, so sliding windows, mirrored passes and
fold models all average the same quantity (see :mod:`swinfuse_auto.inference.sliding_window`).
"""
