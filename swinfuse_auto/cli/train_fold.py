"""``train_fold DATASET FOLD``: fine-tune the Swin-DIM UNETR on one cross-validation fold.

Multi-GPU: ``torchrun --nproc-per-node N -m swinfuse_auto train_fold DATASET FOLD ...``
(every rank trains on its own batches, rank 0 writes).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from swinfuse_auto.cli.common import add_training_flags, run_command, run_training_stage
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_TRAINER


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_fold",
        description="Fine-tune fold FOLD of DATASET: the Swin-DIM UNETR with its encoder "
                    "initialised from the pre-trained checkpoint, Dice + cross-entropy, "
                    "foreground oversampling and augmentation, a checkpoint every epoch, and a "
                    "full-volume validation of the held-out cases at the end.")
    parser.add_argument("dataset", help="dataset folder name, numeric id or path")
    parser.add_argument("fold", help="fold index 0..K-1 (splits_final.json), or 'all'")
    parser.add_argument("--pretrain", default="auto", metavar="auto|none|PATH",
                        help="auto: the dataset's pre-trained encoder, created once if missing; "
                             "none: random initialisation; PATH: a pretrained_encoder.pt")
    parser.add_argument("--trainer", default=DEFAULT_TRAINER,
                        help=f"registered fine-tuning recipe (default: {DEFAULT_TRAINER})")
    parser.add_argument("--planner", default=DEFAULT_PLANNER, help="planner whose plan to use")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="named settings of the recipe, applied before --set (built in: "
                             "nnunet_intensity, shape_over_intensity, cross_modality; default: "
                             "the preset plans.json names for this dataset)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="epochs, at least 1 (default: 300 on a GPU, 10 on a CPU)")
    parser.add_argument("--iterations-per-epoch", type=int, default=None, metavar="N",
                        help="optimiser steps per epoch, at least 1 (default: 250 on a GPU, 25 "
                             "on a CPU)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                        help="change a setting of the fine-tuning recipe, e.g. --set "
                             "learning_rate=1e-4 --set augmentation.gin_probability=0.5; a key "
                             "the recipe does not read is refused with the list of those it does")
    parser.add_argument("--continue", action="store_true", dest="continue_training",
                        help="resume from the fold's checkpoint_latest.pt")
    parser.add_argument("--no-validation", action="store_true",
                        help="skip the full-volume validation at the end")
    add_training_flags(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import train_fold

    fold_dir = run_training_stage(args, lambda: train_fold(
        args.dataset, args.fold, pretrain_choice=args.pretrain, trainer=args.trainer,
        planner=args.planner, epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
        config_overrides=args.overrides, continue_training=args.continue_training,
        validate=not args.no_validation, device=args.device, raw=args.raw,
        preprocessed=args.preprocessed, results=args.results, progress=not args.no_progress,
        preset=args.preset))
    print(f"fold {args.fold} done: {fold_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
