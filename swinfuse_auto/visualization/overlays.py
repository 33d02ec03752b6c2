"""PNG overlays of a case: a few slices along each axis, the image in grey with the contours of
the segmentation (and of the reference, dashed colours swapped) drawn on top.

Slices are chosen where the labels are (the centre of mass of the foreground, and the quartiles
of its extent), so organs are visible without the user hunting for the right slice. Pixels are
drawn at their physical aspect ratio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from swinfuse_auto.io.atomic import atomic_path

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
TILE = 256


def _window(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, [0.5, 99.5])
    return (np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)


def _slices(label: np.ndarray, axis: int, count: int) -> list[int]:
    present = np.flatnonzero(np.any(label > 0, axis=tuple(a for a in range(3) if a != axis)))
    if present.size == 0:
        return list(np.linspace(0, label.shape[axis] - 1, count + 2)[1:-1].astype(int))
    return sorted(set(np.percentile(present, np.linspace(25, 75, count)).astype(int).tolist()))


def _contour(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def _tile(image: np.ndarray, labels: list[np.ndarray], spacing: tuple[float, float]) -> Image.Image:
    """One 2D slice (rows, cols) with the contours of each label map, scaled to the tile."""
    rgb = np.repeat(_window(image)[..., None], 3, axis=2)
    for style, label in enumerate(labels):
        for value in [v for v in np.unique(label) if v > 0]:
            edge = _contour(label == value)
            colour = np.array(PALETTE[(int(value) - 1 + 5 * style) % len(PALETTE)], np.uint8)
            rgb[edge] = colour if style == 0 else (rgb[edge] // 2 + colour // 2)
    tile = Image.fromarray(rgb[::-1])  # first row at the bottom: superior up / anterior up
    height, width = image.shape[0] * spacing[0], image.shape[1] * spacing[1]
    scale = TILE / max(height, width)
    return tile.resize((max(1, int(width * scale)), max(1, int(height * scale))), Image.NEAREST)


def overlay_png(image: np.ndarray, spacing_zyx: tuple[float, float, float], path: Path,
                segmentation: np.ndarray | None = None, reference: np.ndarray | None = None,
                title: str = "", slices_per_axis: int = 3) -> Path:
    """Write a grid of slices (rows: axial, coronal, sagittal) with contours, atomically."""
    labels = [m for m in (segmentation, reference) if m is not None]
    guide = labels[0] if labels else np.zeros(image.shape, np.uint8)
    canvas = Image.new("RGB", (TILE * slices_per_axis, TILE * 3 + 20), "black")
    draw = ImageDraw.Draw(canvas)
    legend = "segmentation" + (" (bright) vs reference (blended)" if len(labels) == 2 else "")
    draw.text((4, 4), f"{title}  {legend}", fill=(255, 255, 255))
    for row, axis in enumerate((0, 1, 2)):
        plane_spacing = tuple(s for a, s in enumerate(spacing_zyx) if a != axis)
        for col, index in enumerate(_slices(guide, axis, slices_per_axis)):
            cut = [slice(None)] * 3
            cut[axis] = index
            tile = _tile(image[tuple(cut)], [m[tuple(cut)] for m in labels], plane_spacing)
            canvas.paste(tile, (col * TILE, 20 + row * TILE))
            draw.text((col * TILE + 4, 22 + row * TILE), f"{'zyx'[axis]}={index}",
                      fill=(255, 255, 0))
    with atomic_path(Path(path)) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
