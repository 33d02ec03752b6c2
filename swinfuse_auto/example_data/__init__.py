"""Synthetic CT and MR abdomen phantoms: the embedded dataset behind ``demo`` and the tests.

The same anatomy (body wall, subcutaneous and visceral fat, liver, spleen, kidneys, spine, aorta)
is rendered as contrast-enhanced CT in Hounsfield units and as T1- or T2-weighted MR (other
subjects, MR spacing and field of view) with a bias field and
Rician noise, on anisotropic, sometimes oblique or flipped grids, so every stage of the pipeline
meets the problems of real data without a download.

Example:
    >>> from swinfuse_auto.example_data import generate_example_dataset
    >>> folder = generate_example_dataset(Path("raw"), ct_cases=6, mr_cases=4)  # doctest: +SKIP
"""

from __future__ import annotations

from swinfuse_auto.example_data.anatomy import ORGAN_LABELS, Tissue
from swinfuse_auto.example_data.intensity import CT_HU, MR_T1, MR_T2
from swinfuse_auto.example_data.synthesis import SyntheticCase, synthesize_case
from swinfuse_auto.example_data.writer import (DEFAULT_NAME, DEFAULT_SHAPE,
                                               generate_example_dataset)

__all__ = ["CT_HU", "DEFAULT_NAME", "DEFAULT_SHAPE", "MR_T1", "MR_T2", "ORGAN_LABELS",
           "SyntheticCase",
           "Tissue", "generate_example_dataset", "synthesize_case"]
