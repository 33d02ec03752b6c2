"""``pretrain DATASET``: self-supervised SwinFUSE pre-training of the dataset's Swin-DIM encoder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from swinfuse_auto.cli.common import add_training_flags, run_command, run_training_stage
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_PRETRAINER


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pretrain",
        description="Pre-train the Swin-DIM encoder self-supervised (inpainting, rotation, "
                    "contrastive and CT/MR density matching) on every image of the dataset: "
                    "training and imagesTs cases, each channel as its own image, plus optional "
                    "extra unlabelled folders. Writes pretrained_encoder.pt, which train_fold "
                    "--pretrain auto uses. An interrupted run resumes where it stopped.")
    parser.add_argument("dataset", help="dataset folder name, numeric id or path")
    parser.add_argument("--iterations", type=int, default=None, metavar="N",
                        help="optimiser steps, at least 1 (default: the plan's budget for this "
                             "device)")
    parser.add_argument("--extra", nargs=2, action="append", metavar=("DIR", "MODALITY"),
                        help="an extra folder of unlabelled images and their modality (CT, MR "
                             "or other); repeat for several folders")
    parser.add_argument("--planner", default=DEFAULT_PLANNER, help="planner whose plan to use")
    parser.add_argument("--trainer", default=DEFAULT_PRETRAINER,
                        help=f"registered pre-training recipe (default: {DEFAULT_PRETRAINER})")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                        help="change a setting of the pre-training recipe, e.g. --set "
                             "learning_rate=1e-3 --set density_matching_weight=0.5; a key the "
                             "recipe does not read is refused with the list of those it does")
    parser.add_argument("--restart", action="store_true",
                        help="discard an existing or interrupted pre-training run")
    parser.add_argument("-np", "--num-processes", type=int, default=1, metavar="N",
                        help="processes for preprocessing the --extra folders")
    add_training_flags(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import pretrain

    path = run_training_stage(args, lambda: pretrain(
        args.dataset, planner=args.planner, iterations=args.iterations, extra=args.extra,
        trainer=args.trainer, config_overrides=args.overrides, device=args.device,
        num_processes=args.num_processes, restart=args.restart,
        preprocessed=args.preprocessed, results=args.results, raw=args.raw,
        progress=not args.no_progress))
    print(f"pre-trained encoder: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
