"""Overlay PNGs show the organs on the right slices; curve PNGs are drawn; visualize checks grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from swinfuse_auto.cli.visualize import main as visualize_main
from swinfuse_auto.io.image import Geometry, write_image
from swinfuse_auto.visualization.curves import plot_history
from swinfuse_auto.visualization.overlays import HEADER, LEGEND, TILE, colour_of, overlay_png

SHAPE = (20, 30, 40)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _phantom() -> tuple[np.ndarray, np.ndarray]:
    """An image with two bright boxes, labelled 1 and 2, in one corner of the volume."""
    label = np.zeros(SHAPE, np.uint8)
    label[12:18, 4:12, 4:14] = 1
    label[12:18, 16:24, 20:30] = 2
    image = np.where(label > 0, 200.0, 0.0).astype(np.float32) + np.linspace(0, 10, SHAPE[2])
    return image, label


def _pixels(png: Path, colour: tuple[int, int, int], row: int) -> int:
    """Pixels of exactly ``colour`` in the tiles of ``row`` (0 axial, 1 coronal, 2 sagittal)."""
    rgb = np.asarray(Image.open(png).convert("RGB"))
    band = rgb[HEADER + row * TILE: HEADER + (row + 1) * TILE]
    return int(np.all(band == np.array(colour, np.uint8), axis=-1).sum())


def test_reference_contours_of_every_organ_appear_on_every_axis(tmp_path: Path) -> None:
    image, label = _phantom()
    missed_organ_2 = np.where(label == 2, 0, label)
    png = overlay_png(image, (2.0, 1.0, 1.0), tmp_path / "case.png", missed_organ_2, label,
                      "case", label_names={1: "liver", 2: "spleen"})
    assert Image.open(png).size == (3 * TILE, HEADER + 3 * TILE + LEGEND)
    for row in range(3):  # the slices go through the organs, which fill only one corner
        for value in (1, 2):
            assert _pixels(png, colour_of(value), row) > 20, (row, value)


def test_slices_follow_the_segmentation_without_a_reference(tmp_path: Path) -> None:
    image, label = _phantom()
    with_labels = overlay_png(image, (2.0, 1.0, 1.0), tmp_path / "a.png", label)
    without = overlay_png(image, (2.0, 1.0, 1.0), tmp_path / "b.png")
    a, b = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in (with_labels, without))
    assert a.shape == b.shape and np.abs(a - b).sum() > 0


def test_training_curves_png_is_drawn(tmp_path: Path) -> None:
    history = [{"loss": 2.0 - 0.1 * i, "dice_loss": 0.9 - 0.05 * i, "ce_loss": 1.1 - 0.05 * i,
                "pseudo_dice": 0.1 * i, "pseudo_dice_ema": 0.05 * i} for i in range(5)]
    plot_history(history, tmp_path / "progress.png")
    rgb = np.asarray(Image.open(tmp_path / "progress.png").convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 5  # more than a blank canvas


def test_visualize_command_writes_the_png_and_refuses_another_grid(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    image, label = _phantom()
    geometry = Geometry(SHAPE[::-1], (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), IDENTITY)
    write_image(image, geometry, tmp_path / "img.nii.gz")
    write_image(label, geometry, tmp_path / "seg.nii.gz")
    moved = Geometry(SHAPE[::-1], (1.0, 1.0, 2.0), (5.0, 0.0, 0.0), IDENTITY)
    write_image(label, moved, tmp_path / "ref.nii.gz")
    assert visualize_main([str(tmp_path / "img.nii.gz"), str(tmp_path / "seg.nii.gz"),
                           "-o", str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").is_file()
    spec = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "spleen": 2},
            "numTraining": 1, "file_ending": ".nii.gz"}
    (tmp_path / "my_dataset.json").write_text(json.dumps(spec))  # any file name is accepted
    assert visualize_main([str(tmp_path / "img.nii.gz"), str(tmp_path / "seg.nii.gz"),
                           "-o", str(tmp_path / "named.png"),
                           "--dataset-json", str(tmp_path / "my_dataset.json")]) == 0
    assert visualize_main([str(tmp_path / "img.nii.gz"), str(tmp_path / "seg.nii.gz"),
                           "--reference", str(tmp_path / "ref.nii.gz"),
                           "-o", str(tmp_path / "bad.png")]) == 2
    assert "ref.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()
