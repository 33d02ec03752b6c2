"""Preprocessed-case datasets, cross-validation splits, patch sampling and augmentation."""
