"""Segmentation metrics per class and case, and their summary across cases.

numpy/scipy only, so evaluation runs without torch and on any machine that can read the labels.
"""
