"""``evaluate -r REFERENCE_DIR -p PREDICTION_DIR -d DATASET``: Dice, NSD and HD95 per case."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swinfuse_auto.cli.common import add_verbosity_flag, run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate",
        description="Compare predicted label maps with reference label maps (paired by file "
                    "name) per case and class: Dice, normalised surface Dice (NSD) and HD95, "
                    "plus means. Prints a table and writes JSON. A prediction on another grid "
                    "than its reference is an error, never resampled.",
        epilog="In the JSON, null marks a class absent from both reference and prediction "
               "(not scored), and \"inf\" an HD95 where the class is on one side only.")
    parser.add_argument("-r", "--reference", required=True, metavar="REFERENCE_DIR",
                        help="folder of reference label maps (e.g. labelsTs)")
    parser.add_argument("-p", "--prediction", required=True, metavar="PREDICTION_DIR",
                        help="folder of predicted label maps (e.g. predict's output)")
    parser.add_argument("-d", "--dataset", required=True,
                        help="dataset name, id or path: its dataset.json gives the labels and "
                             "the file ending")
    parser.add_argument("--tolerance-mm", type=float, default=1.0, metavar="MM",
                        help="NSD tolerance in mm (default: 1.0)")
    parser.add_argument("--include-background", action="store_true",
                        help="also score label 0 (not part of the foreground mean)")
    parser.add_argument("--json", metavar="FILE",
                        help="where to write the results (default: PREDICTION_DIR/summary.json)")
    parser.add_argument("-np", "--num-processes", type=int, default=1, metavar="N",
                        help="worker processes (default: 1)")
    parser.add_argument("--raw", metavar="DIR",
                        help="raw datasets root (default: $SWINFUSE_RAW, else $nnUNet_raw)")
    add_verbosity_flag(parser)
    return parser


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.4f}"


def _print_table(summary: dict[str, Any]) -> None:
    names = summary["labels"]
    print(f"{'case':<24} {'label':<16} {'Dice':>8} {'NSD':>8} {'HD95 mm':>9}")
    for case_id, per_label in summary["cases"].items():
        for label, metrics in per_label.items():
            print(f"{case_id:<24} {names[label]:<16} {_fmt(metrics['dice']):>8} "
                  f"{_fmt(metrics['nsd']):>8} {_fmt(metrics['hd95']):>9}")
    print(f"{'mean':<24} {'':<16}")
    for label, metrics in summary["mean"].items():
        print(f"{'':<24} {names[label]:<16} {_fmt(metrics['dice']):>8} "
              f"{_fmt(metrics['nsd']):>8} {_fmt(metrics['hd95']):>9}")
    fg = summary["foreground_mean"]
    if fg:
        print(f"{'foreground mean':<41} {_fmt(fg['dice']):>8} {_fmt(fg['nsd']):>8} "
              f"{_fmt(fg['hd95']):>9}")


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import evaluate_folders
    from swinfuse_auto.dataset.spec import load_dataset_spec
    from swinfuse_auto.errors import ConfigError
    from swinfuse_auto.evaluation.folder_eval import SUMMARY_FILE
    from swinfuse_auto.io.output_checks import check_output_location
    from swinfuse_auto.paths import resolve_dataset

    if args.num_processes < 1:
        raise ConfigError(f"-np must be at least 1, found {args.num_processes}.")
    summary_file = Path(args.json) if args.json else Path(args.prediction) / SUMMARY_FILE
    check_output_location(summary_file.parent, f"folder of {summary_file.name}", "--json FILE")
    spec = load_dataset_spec(resolve_dataset(args.dataset, raw=args.raw).raw_dir)
    labels = spec.label_values if args.include_background else spec.foreground_labels
    names = {value: name for name, value in spec.labels.items() if name != "ignore"}
    summary = evaluate_folders(args.reference, args.prediction, labels, args.tolerance_mm,
                               spec.file_ending, args.num_processes, args.json, names)
    _print_table(summary)
    print(f"{summary['num_cases']} case(s); results -> {summary['summary_file']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
