"""Helpers the tests share (and ``benchmarks/predict.py`` borrows): not part of the package.

``tests/`` is on the import path while pytest runs (the root conftest lives there), so tests import
them as ``helpers.<module>``.
"""
