"""Trained-model file formats and what reads them, below both training and inference.

Training writes fold checkpoints and the pre-trained encoder file; prediction, export and the
next fine-tuning run read them. Keeping the formats (:mod:`.checkpoint`, :mod:`.fold_model`,
:mod:`.encoder_file`, :mod:`.archive`) and the device choice here lets training and inference
share them without importing each other.
"""
