"""Inference: from preprocessed volumes, or raw images, to segmentations on the input's grid.

The maths are small pure pieces working on tensors in network space: :mod:`.sliding_window`
(windows, Gaussian weights, aggregation) and :mod:`.tta` (mirroring). On top of them,
:mod:`.fold_ensemble` averages the fold networks; :mod:`.raw_grid` maps probabilities back onto
the raw image grid in bounded memory; :mod:`.segmentation_model` is a trained model loaded once
(preprocess a case, predict, map back, postprocess), and :mod:`.folder_prediction` runs it over
a folder with reading, inference and writing overlapped. The common currency is softmax
probabilities, so sliding windows, mirrored passes and fold models all average the same
quantity (see :mod:`swinfuse_auto.inference.sliding_window`). The public entry points are
:func:`swinfuse_auto.api.load_model` and :func:`swinfuse_auto.api.predict_folder`.
"""
