"""``make_example_dataset OUTPUT_ROOT``: write the synthetic CT/MR abdomen dataset."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from swinfuse_auto.cli.common import add_verbosity_flag, run_command
from swinfuse_auto.example_data import DEFAULT_NAME, DEFAULT_SHAPE, generate_example_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the command; shared with the umbrella ``swinfuse_auto make_example_dataset``."""
    parser.add_argument("output_root", metavar="OUTPUT_ROOT", type=Path,
                        help="folder that receives the dataset folder, e.g. $SWINFUSE_RAW")
    parser.add_argument("--name", default=DEFAULT_NAME,
                        help=f"dataset folder name (default: {DEFAULT_NAME})")
    parser.add_argument("--ct-cases", type=int, default=6, metavar="N",
                        help="labelled CT training cases in imagesTr/labelsTr (default: 6)")
    parser.add_argument("--mr-cases", type=int, default=4, metavar="N",
                        help="labelled T1 MR cases in imagesTs/labelsTs, tagged as MR "
                             "(default: 4)")
    parser.add_argument("--shape", type=int, nargs=3, default=list(DEFAULT_SHAPE),
                        metavar=("Z", "Y", "X"),
                        help="nominal voxels per case; with random spacing each case scatters "
                             "around it (default: %(default)s)")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("Z", "Y", "X"),
                        help="voxel size in mm for every case, e.g. 2.5 0.7 0.7 with --shape "
                             "120 512 512 for realistic sizes (default: random anisotropic "
                             "spacing per case)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed; the same seed gives identical images (default: 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the dataset folder if it already exists")
    add_verbosity_flag(parser)


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone parser; a factory so ``main`` can be called repeatedly in tests."""
    parser = argparse.ArgumentParser(
        prog="make_example_dataset",
        description="Write a synthetic abdomen dataset (CT training cases and T1 MR cases of the "
                    "same anatomy, anisotropic and oblique grids) in the nnU-Net v2 raw layout, "
                    "for the demo and for trying the pipeline without a download.")
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Generate the dataset and print its folder, so scripts can capture the path."""
    folder = generate_example_dataset(
        args.output_root, args.name, ct_cases=args.ct_cases, mr_cases=args.mr_cases,
        shape=tuple(args.shape), seed=args.seed,
        spacing=tuple(args.spacing) if args.spacing else None, overwrite=args.overwrite)
    print(folder)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (0 ok, 2 user error)."""
    return run_command(build_parser, run, argv)
