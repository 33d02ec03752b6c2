"""Postprocessing of predicted label maps: keep only the largest connected component of a class.

``summarize_cv`` decides, per foreground class, whether removing all but the largest component
improved the cross-validation Dice (nnU-Net's rule), and stores the decision as
``postprocessing.json`` in the model folder::

    {"largest_component_classes": [1, 3]}

Prediction applies exactly that decision; a model folder without the file gets no
postprocessing (the decision has not been made yet), which is logged, not an error.

Connectivity is 26 (faces, edges and corners): two parts of an organ that touch only diagonally
on a coarse grid are one structure, so the more forgiving neighbourhood removes less.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.io.atomic import read_json, write_json
from swinfuse_auto.maths.crop import bbox_of
from swinfuse_auto.paths import POSTPROCESSING_FILE

logger = logging.getLogger(__name__)

_FULL_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)


@dataclass(frozen=True)
class PostprocessingDecision:
    """Which classes keep only their largest connected component.

    Args:
        largest_component_classes: foreground label values (never 0).

    Example:
        >>> decision = PostprocessingDecision((1, 3))
        >>> PostprocessingDecision.from_dict(decision.to_dict()) == decision
        True
    """

    largest_component_classes: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, list[int]]:
        return {"largest_component_classes": list(self.largest_component_classes)}

    @classmethod
    def from_dict(cls, data: Any, source: str = POSTPROCESSING_FILE) -> PostprocessingDecision:
        """Validate a decision dict; ``source`` names the file in error messages.

        Raises:
            ConfigError: not an object, or class values that are not positive integers.
        """
        if not isinstance(data, dict) or "largest_component_classes" not in data:
            raise ConfigError(f"{source}: expected an object like "
                              '{"largest_component_classes": [1, 2]}, found '
                              f"{str(data)[:80]!r}. Re-run summarize_cv to rewrite it.")
        classes = data["largest_component_classes"]
        if not isinstance(classes, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in classes):
            raise ConfigError(f"{source}: largest_component_classes must be a list of "
                              f"foreground label values (integers > 0), found {classes!r}.")
        return cls(tuple(sorted(set(classes))))

    def check_classes(self, num_classes: int, source: str = POSTPROCESSING_FILE) -> None:
        """Raise when a class is not one the model predicts (a file from another model)."""
        wrong = [c for c in self.largest_component_classes if c >= num_classes]
        if wrong:
            raise ConfigError(f"{source}: classes {wrong} do not exist; the model predicts "
                              f"labels 0..{num_classes - 1}. The file belongs to another model; "
                              "re-run summarize_cv for this one.")


def load_postprocessing(model_dir: Path) -> PostprocessingDecision:
    """The decision stored in ``model_dir``, or none when summarize_cv has not written it yet."""
    path = Path(model_dir) / POSTPROCESSING_FILE
    if not path.exists():
        logger.info("%s not found: predictions are written without postprocessing (run "
                    "summarize_cv to decide it)", path)
        return PostprocessingDecision()
    try:
        data = read_json(path)
    except Exception as exc:  # read_json raises SwinfuseError naming the file
        raise ConfigError(str(exc)) from None
    return PostprocessingDecision.from_dict(data, str(path))


def save_postprocessing(model_dir: Path, decision: PostprocessingDecision) -> Path:
    """Write ``postprocessing.json`` atomically (used by summarize_cv)."""
    path = Path(model_dir) / POSTPROCESSING_FILE
    write_json(path, decision.to_dict())
    return path


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest 26-connected component of ``mask`` (empty stays empty).

    Labelling runs on the mask's bounding box only, so a small organ in a large CT costs what
    its box costs. Ties go to the component found first in raster order (deterministic).
    """
    mask = np.asarray(mask, dtype=bool)
    result = np.zeros(mask.shape, dtype=bool)
    if not mask.any():
        return result
    box = tuple(slice(a, b) for a, b in bbox_of(mask))
    components, count = ndimage.label(mask[box], structure=_FULL_CONNECTIVITY)
    if count == 1:
        result[box] = mask[box]
        return result
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    result[box] = components == int(np.argmax(sizes))
    return result


def apply_postprocessing(segmentation: np.ndarray, decision: PostprocessingDecision
                         ) -> np.ndarray:
    """Set every voxel of a listed class outside its largest component to background (0).

    Works in place on ``segmentation`` (an integer label map) and returns it.
    """
    for value in decision.largest_component_classes:
        mask = segmentation == value
        if mask.any():
            segmentation[mask & ~largest_component(mask)] = 0
    return segmentation
