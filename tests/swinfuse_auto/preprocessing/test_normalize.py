from __future__ import annotations

import numpy as np
import pytest

from swinfuse_auto.dataset.modality import Modality, modality_of
from swinfuse_auto.maths.normalization import normalize
from swinfuse_auto.plans.schema import NormalizationPlan


@pytest.mark.parametrize("name,expected", [("CT", Modality.CT), ("ct", Modality.CT),
                                           ("T1", Modality.MR), ("t2w", Modality.MR),
                                           ("FLAIR", Modality.MR), ("ADC", Modality.MR),
                                           ("MRI", Modality.MR), ("PET", Modality.OTHER),
                                           ("noise", Modality.OTHER)])
def test_modality_from_channel_name(name: str, expected: Modality) -> None:
    assert modality_of(name) is expected


def test_ct_scheme_clips_then_uses_dataset_statistics() -> None:
    image = np.array([[[-1000.0, 0.0, 100.0, 3000.0]]], dtype=np.float32)[None]
    plan = NormalizationPlan("ct", False, {"clip_low": -100.0, "clip_high": 200.0,
                                           "mean": 50.0, "std": 25.0})
    out = normalize(image.copy(), [plan])
    np.testing.assert_allclose(out.ravel(), [-6.0, -2.0, 2.0, 6.0])


def test_masked_zscore_ignores_and_zeroes_the_background() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((1, 8, 8, 8), dtype=np.float32)
    image[0, 2:6, 2:6, 2:6] = rng.normal(100, 10, (4, 4, 4))
    mask = image[0] != 0
    out = normalize(image.copy(), [NormalizationPlan("zscore", True)], mask)
    assert abs(out[0][mask].mean()) < 1e-5 and abs(out[0][mask].std() - 1) < 1e-4
    assert np.all(out[0][~mask] == 0)
