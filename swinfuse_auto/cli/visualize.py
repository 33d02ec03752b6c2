"""``visualize``: PNG overlays of an image with its segmentation (and reference) contours."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from swinfuse_auto.cli.common import add_verbosity_flag, run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visualize",
        description="Write a PNG with slices along each axis of IMAGE, SEGMENTATION as a "
                    "translucent fill and --reference (if given) as contours in the same class "
                    "colours: a fill without its contour is a false positive, a contour without "
                    "its fill a miss.")
    parser.add_argument("image", help="image file (one channel, e.g. CASE_0000.nii.gz)")
    parser.add_argument("segmentation", help="label map on the image's grid")
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    parser.add_argument("--reference", default=None, help="reference label map to compare")
    parser.add_argument("--slices", type=int, default=3, help="slices per axis (default 3)")
    parser.add_argument("--dataset-json", default=None, metavar="FILE",
                        help="dataset.json whose label names go into the colour legend")
    add_verbosity_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.errors import DatasetError
    from swinfuse_auto.io.image import read_image
    from swinfuse_auto.visualization.overlays import overlay_png

    image, geometry = read_image(Path(args.image))
    segmentation, seg_geometry = read_image(Path(args.segmentation), dtype=None)
    reference = None
    if args.reference:
        reference, ref_geometry = read_image(Path(args.reference), dtype=None)
        if geometry.mismatch(ref_geometry):
            raise DatasetError(f"{args.reference} is not on the grid of {args.image}.")
    if geometry.mismatch(seg_geometry):
        raise DatasetError(f"{args.segmentation} is not on the grid of {args.image} "
                           f"({', '.join(geometry.mismatch(seg_geometry))} differ).")
    names = None
    if args.dataset_json:
        from swinfuse_auto.dataset.spec import read_dataset_json

        spec = read_dataset_json(Path(args.dataset_json))
        names = {int(value): name for name, value in spec.labels.items()}
    path = overlay_png(image, geometry.spacing_zyx, Path(args.output), segmentation, reference,
                       Path(args.image).name, args.slices, names)
    print(f"written: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
