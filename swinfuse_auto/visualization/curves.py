"""Training curves as a PNG, drawn with Pillow (already installed with batchgenerators), so the
package needs no plotting library.

Two panels: losses per epoch (train loss, its Dice-loss and cross-entropy parts) and the
validation pseudo-Dice (a score: higher is better) with its moving average, each with its own
axis range, ticks and a legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from swinfuse_auto.io.atomic import atomic_path

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
PANEL = (640, 260)
MARGIN = (56, 18, 16, 30)  # left, top, right, bottom


def _draw_panel(draw: ImageDraw.ImageDraw, origin: tuple[int, int], title: str,
                series: dict[str, Sequence[float]]) -> None:
    left, top = origin[0] + MARGIN[0], origin[1] + MARGIN[1]
    right, bottom = origin[0] + PANEL[0] - MARGIN[2], origin[1] + PANEL[1] - MARGIN[3]
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    draw.text((left, origin[1] + 2), title, fill=(0, 0, 0))
    values = [v for s in series.values() for v in s]
    if not values:
        return
    low, high = min(values), max(values)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    count = max(len(s) for s in series.values())

    def to_xy(i: int, v: float) -> tuple[float, float]:
        x = left + (right - left) * (i / max(count - 1, 1))
        return x, bottom - (bottom - top) * (v - low) / (high - low)

    for frac in (0.0, 0.5, 1.0):
        value = low + frac * (high - low)
        y = bottom - frac * (bottom - top)
        draw.line([left - 4, y, left, y], fill=(0, 0, 0))
        draw.text((origin[0] + 4, y - 6), f"{value:.3g}", fill=(0, 0, 0))
    draw.text((right - 60, bottom + 8), f"epoch {count}", fill=(0, 0, 0))
    for k, (name, data) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        points = [to_xy(i, v) for i, v in enumerate(data)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        elif points:
            x, y = points[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((left + 8 + 110 * k, top + 4), name, fill=colour)


def plot_history(history: Sequence[dict[str, float]], path: Path) -> None:
    """Write the two-panel curve PNG for ``history`` (one dict per epoch), atomically."""
    def column(key: str) -> list[float]:
        return [h[key] for h in history if key in h]

    losses = {k: column(k) for k in ("loss", "dice_loss", "ce_loss") if column(k)}
    quality = {k: column(k) for k in ("pseudo_dice", "pseudo_dice_ema") if column(k)}
    image = Image.new("RGB", (PANEL[0], 2 * PANEL[1]), "white")
    draw = ImageDraw.Draw(image)
    _draw_panel(draw, (0, 0), "training loss", losses)
    _draw_panel(draw, (0, PANEL[1]), "validation pseudo-Dice (patches)", quality)
    with atomic_path(Path(path)) as tmp:
        image.save(tmp, format="PNG")


class CurvePlotter:
    """Epoch callback redrawing the curves after every epoch (rank 0 only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __call__(self, loop: Any, record: dict[str, float]) -> None:
        if loop.context.is_main:
            plot_history(loop.history, self.path)
