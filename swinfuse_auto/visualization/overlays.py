"""PNG overlays of a case: a few slices along each axis, the image in grey, the segmentation as a
translucent fill and the reference as a contour in the same class colour.

Fill versus contour keeps the two readable on one slice: where the prediction is right, each
contour hugs the edge of its fill; a fill without a contour is a false positive, a contour
without a fill a miss. Slices go through the organs (quartiles of the reference's extent along
each axis, or the segmentation's when there is no reference), so nothing has to be hunted for.
The grey window is computed once over the volume, so all slices share one contrast, and pixels
are drawn at their physical aspect ratio; contours are traced after scaling, so they stay one
pixel wide.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from swinfuse_auto.io.atomic import atomic_path

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
TILE = 256
HEADER = 20
LEGEND = 22
FILL_ALPHA = 0.45


def colour_of(value: int) -> tuple[int, int, int]:
    return PALETTE[(int(value) - 1) % len(PALETTE)]


def grey_window(image: np.ndarray) -> tuple[float, float]:
    """The 0.5 / 99.5 percentiles of the volume: one contrast for every slice."""
    low, high = np.percentile(image, [0.5, 99.5])
    return float(low), float(max(high, low + 1e-6))


def _slices(guide: np.ndarray, axis: int, count: int) -> list[int]:
    present = np.flatnonzero(np.any(guide > 0, axis=tuple(a for a in range(3) if a != axis)))
    if present.size == 0:
        return list(np.linspace(0, guide.shape[axis] - 1, count + 2)[1:-1].astype(int))
    return sorted(set(np.percentile(present, np.linspace(25, 75, count)).astype(int).tolist()))


def _scaled(plane: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """``plane`` (rows, cols) flipped so the first row is at the bottom, resized to ``size``."""
    return np.asarray(Image.fromarray(plane[::-1]).resize(size, resample))


def _tile(plane: np.ndarray, window: tuple[float, float], segmentation: np.ndarray | None,
          reference: np.ndarray | None, spacing: tuple[float, float]) -> Image.Image:
    """One slice with the segmentation filled and the reference outlined, scaled to the tile."""
    height, width = plane.shape[0] * spacing[0], plane.shape[1] * spacing[1]
    scale = TILE / max(height, width)
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    grey = np.clip((plane - window[0]) / (window[1] - window[0]), 0, 1) * 255
    rgb = np.repeat(_scaled(grey.astype(np.float32), size, Image.BILINEAR)[..., None], 3, axis=2)
    rgb = rgb.astype(np.float32)
    if segmentation is not None:
        labels = _scaled(segmentation.astype(np.int32), size, Image.NEAREST)
        for value in np.unique(labels[labels > 0]):
            mask = labels == value
            rgb[mask] = (1 - FILL_ALPHA) * rgb[mask] + FILL_ALPHA * np.array(colour_of(value))
    if reference is not None:
        labels = _scaled(reference.astype(np.int32), size, Image.NEAREST)
        for value in np.unique(labels[labels > 0]):
            mask = labels == value
            rgb[mask & ~ndimage.binary_erosion(mask)] = colour_of(value)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def _legend(draw: ImageDraw.ImageDraw, top: int, values: list[int],
            names: Mapping[int, str]) -> None:
    x = 4
    for value in values:
        draw.rectangle((x, top + 5, x + 12, top + 17), fill=colour_of(value))
        text = names.get(value, str(value))
        draw.text((x + 16, top + 5), text, fill=(255, 255, 255))
        x += 16 + 7 * len(text) + 12


def overlay_png(image: np.ndarray, spacing_zyx: tuple[float, float, float], path: Path,
                segmentation: np.ndarray | None = None, reference: np.ndarray | None = None,
                title: str = "", slices_per_axis: int = 3,
                label_names: Mapping[int, str] | None = None) -> Path:
    """Write a grid of slices (rows: axial, coronal, sagittal), atomically; returns ``path``.

    Args:
        image: (z, y, x) intensities.
        segmentation: label map drawn as a translucent fill (e.g. a prediction).
        reference: label map drawn as contours (e.g. the manual segmentation).
        label_names: value -> name for the colour legend (values are shown otherwise).
    """
    guide = next((m for m in (reference, segmentation) if m is not None),
                 np.zeros(image.shape, np.uint8))
    values = sorted({int(v) for m in (segmentation, reference) if m is not None
                     for v in np.unique(m) if v > 0})
    canvas = Image.new("RGB", (TILE * slices_per_axis, HEADER + TILE * 3 + LEGEND), "black")
    draw = ImageDraw.Draw(canvas)
    parts = [("filled: segmentation", segmentation), ("outlined: reference", reference)]
    draw.text((4, 4), "  ".join([title] + [text for text, m in parts if m is not None]),
              fill=(255, 255, 255))
    window = grey_window(image)
    for row, axis in enumerate((0, 1, 2)):
        plane_spacing = tuple(s for a, s in enumerate(spacing_zyx) if a != axis)
        for col, index in enumerate(_slices(guide, axis, slices_per_axis)):
            cut: list[slice | int] = [slice(None)] * 3
            cut[axis] = index
            pick = tuple(cut)
            tile = _tile(image[pick], window,
                         None if segmentation is None else segmentation[pick],
                         None if reference is None else reference[pick], plane_spacing)
            canvas.paste(tile, (col * TILE, HEADER + row * TILE))
            draw.text((col * TILE + 4, HEADER + 2 + row * TILE), f"{'zyx'[axis]}={index}",
                      fill=(255, 255, 0))
    _legend(draw, HEADER + 3 * TILE, values, dict(label_names or {}))
    with atomic_path(Path(path)) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
