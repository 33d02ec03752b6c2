"""``summarize_cv DATASET``: cross-validation table and postprocessing decision."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from swinfuse_auto.cli.common import add_root_flags, add_verbosity_flag, run_command
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_TRAINER


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="summarize_cv",
        description="Collect every fold's validation into one table (per fold, per class, "
                    "mean), decide per class whether keeping the largest connected component "
                    "improves the cross-validation Dice, and store that for predict.")
    parser.add_argument("dataset", help="dataset folder name, numeric id or path")
    parser.add_argument("--trainer", default=DEFAULT_TRAINER, help="trainer of the model")
    parser.add_argument("--planner", default=DEFAULT_PLANNER, help="planner of the model")
    add_root_flags(parser)
    add_verbosity_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import summarize_cv
    from swinfuse_auto.evaluation.cross_validation import format_table

    table, path = summarize_cv(args.dataset, trainer=args.trainer, planner=args.planner,
                               raw=args.raw, results=args.results)
    print(format_table(table))
    print(f"written: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
