from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.inference.postprocessing import (PostprocessingDecision, apply_postprocessing,
                                                    largest_component, load_postprocessing,
                                                    save_postprocessing)


def test_largest_component_keeps_the_biggest_26_connected_part() -> None:
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[1:4, 1:4, 1:4] = True          # 27 voxels
    mask[4, 4, 4] = True                # touches the cube only at a corner: same component
    mask[7:9, 7:9, 7:9] = True          # 8 voxels, separate
    kept = largest_component(mask)
    assert kept.sum() == 28 and kept[4, 4, 4] and not kept[8, 8, 8]
    assert not largest_component(np.zeros((3, 3, 3), dtype=bool)).any()


def test_apply_postprocessing_only_touches_listed_classes() -> None:
    seg = np.zeros((8, 8, 8), dtype=np.uint8)
    seg[0:3, 0:3, 0:3] = 1
    seg[6, 6, 6] = 1                    # stray island of class 1: removed
    seg[5:7, 0:2, 0:2] = 2
    seg[0, 7, 7] = 2                    # island of class 2: kept (class not listed)
    out = apply_postprocessing(seg.copy(), PostprocessingDecision((1,)))
    assert out[6, 6, 6] == 0 and out[0, 7, 7] == 2 and (out == 1).sum() == 27
    assert np.array_equal(apply_postprocessing(seg.copy(), PostprocessingDecision()), seg)


def test_decision_file_round_trip_and_validation(tmp_path: Path) -> None:
    assert load_postprocessing(tmp_path) == PostprocessingDecision()  # not decided yet
    save_postprocessing(tmp_path, PostprocessingDecision((2, 1)))
    decision = load_postprocessing(tmp_path)
    assert decision.largest_component_classes == (1, 2)
    decision.check_classes(3)
    with pytest.raises(ConfigError, match="another model"):
        decision.check_classes(2)
    (tmp_path / "postprocessing.json").write_text('{"largest_component_classes": [0]}')
    with pytest.raises(ConfigError, match="postprocessing.json.*integers > 0"):
        load_postprocessing(tmp_path)
    (tmp_path / "postprocessing.json").write_text("{not json")
    with pytest.raises(ConfigError, match="postprocessing.json"):
        load_postprocessing(tmp_path)
