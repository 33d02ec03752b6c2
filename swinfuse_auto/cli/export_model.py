"""``export_model -d DATASET -o MODEL.zip``: pack a trained model for another machine."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from swinfuse_auto.cli.common import add_root_flags, add_verbosity_flag, run_command
from swinfuse_auto.cli.predict import add_model_flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="export_model",
        description="Write the final checkpoints of the chosen folds, plans.json, dataset.json "
                    "and postprocessing.json to one zip with a SHA-256 manifest. On the target "
                    "machine run: predict -m MODEL.zip -i IN -o OUT (add --sha256 HEX to check "
                    "it is the published file).")
    parser.add_argument("-o", "--output", required=True, metavar="ARCHIVE",
                        help="archive file to write, e.g. Dataset990_model.zip")
    add_model_flags(parser)
    add_root_flags(parser)
    add_verbosity_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import export_model

    info = export_model(args.output, args.model, args.dataset, args.folds, args.trainer,
                        args.planner, args.results, args.raw)
    print(f"wrote {info.path} ({info.size_bytes / 1024**2:.1f} MB, folds "
          f"{', '.join(info.folds)})")
    print(f"sha256 {info.sha256}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
