"""Crop, resample, normalise and cache cases exactly as training and prediction need them."""
