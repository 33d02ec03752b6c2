"""Pure image maths shared by several stages: crop to non-zero, resampling, normalisation schemes.

Fingerprinting, preprocessing, evaluation and prediction all crop and resample; keeping the maths
in one low package lets each of them use it without importing another stage.
"""
