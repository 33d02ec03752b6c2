"""``predict -i INPUT_DIR -o OUTPUT_DIR -d DATASET``: segment a folder of raw images."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from swinfuse_auto.cli.common import add_root_flags, add_verbosity_flag, run_command
from swinfuse_auto.inference.options import PRECISIONS, TILINGS
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_TRAINER

EXIT_CASES_FAILED = 1


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """-d/-m, --trainer, --planner, -f: which trained model (shared with export_model)."""
    group = parser.add_argument_group("model")
    source = group.add_mutually_exclusive_group(required=True)
    source.add_argument("-d", "--dataset",
                        help="dataset folder name (Dataset501_Liver), numeric id or path; the "
                             "model is RESULTS/<dataset>/<trainer>__<planner>")
    source.add_argument("-m", "--model", metavar="DIR_OR_ARCHIVE",
                        help="a model folder (<trainer>__<planner>) or an archive written by "
                             "export_model")
    group.add_argument("-f", "--folds", nargs="+", metavar="FOLD",
                       help="folds to ensemble, e.g. -f 0 1 2 or -f all (default: every fold "
                            "with checkpoint_final.pt)")
    group.add_argument("--trainer", default=DEFAULT_TRAINER,
                       help=f"trainer name of the model folder (default: {DEFAULT_TRAINER})")
    group.add_argument("--planner", default=DEFAULT_PLANNER,
                       help=f"planner name of the model folder (default: {DEFAULT_PLANNER})")


def _positive_int(text: str) -> int:
    """argparse type of ``--threads``: a clear usage error instead of a traceback later."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of threads, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_speed_flags(parser: argparse.ArgumentParser) -> None:
    """--tiling, --precision, --threads, --dry-run: how fast the network runs (README, predict)."""
    group = parser.add_argument_group("speed")
    group.add_argument("--tiling", choices=TILINGS, default="window",
                       help="window (default): patch-sized windows, as in training; auto: tiles "
                            "larger than the patch, inside the volume, the fewest voxels in all "
                            "within half the available memory: fewer voxels to predict, so "
                            "faster, but the segmentation changes (the decoder's instance norm "
                            "sees the whole tile; measured in the README)")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto (default): bf16 where a one-off measurement on this CPU finds "
                            "it faster (cached per CPU, torch version and thread count), bf16 on "
                            "GPUs that support it; fp32 or bf16 force one")
    group.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="torch threads on a CPU (default: torch's count capped at the cores "
                            "this process may use, cgroup quota included)")
    group.add_argument("--dry-run", action="store_true",
                       help="print the cases, tiles, device, threads, precision and estimated "
                            "time, then exit without predicting or writing anything")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict",
        description="Segment every case of a folder (CASE_0000.nii.gz, CASE_0001.nii.gz, ... as "
                    "in imagesTs; CASE.nii.gz also works for one-channel models) with the fold "
                    "ensemble, and write OUTPUT_DIR/CASE.nii.gz with the input's exact size, "
                    "spacing, origin and direction.",
        epilog="Exit status: 0 when every case was written or skipped, 1 when some cases failed "
               "(the others are still written; each failure is printed), 2 for a usage error "
               "(missing model, bad folder, an output folder that cannot be written, checked "
               "before any case is predicted) or an error writing the outputs (disk full).")
    parser.add_argument("-i", "--input", required=True, metavar="INPUT_DIR",
                        help="folder of images to segment")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT_DIR",
                        help="folder for the segmentations (created if missing)")
    add_model_flags(parser)
    parser.add_argument("--sha256", metavar="HEX",
                        help="with -m ARCHIVE: refuse the archive unless its SHA-256 is this "
                             "(printed by export_model)")
    parser.add_argument("--no-tta", action="store_true",
                        help="no mirroring test-time augmentation (8x faster, slightly worse)")
    parser.add_argument("--step", type=float, default=0.5, metavar="FRACTION",
                        help="sliding-window step as a fraction of the patch (default: 0.5, i.e. "
                             "50%% overlap)")
    parser.add_argument("--window-batch", type=int, default=None, metavar="N",
                        help="windows per network call (default: 1, the plan's batch size for "
                             "patch-sized windows on a GPU)")
    add_speed_flags(parser)
    parser.add_argument("--save-probabilities", action="store_true",
                        help="also write CASE_probabilities.npy (classes x z x y x, float32, on "
                             "the input grid) and CASE_probabilities.json (class names, geometry)")
    parser.add_argument("--overwrite", action="store_true",
                        help="predict cases whose outputs exist already (skipped by default)")
    parser.add_argument("--channel-names", nargs="+", metavar="NAME",
                        help="modality of each channel for every case (e.g. T1 for MR images "
                             "given to a CT model); default: dataset.json, including its "
                             "case_channel_names")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the network runs (default: a GPU when there is one)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_root_flags(parser)
    add_verbosity_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import estimate_prediction, load_model, predict_folder
    from swinfuse_auto.inference.estimate import format_seconds

    model = load_model(args.model, args.dataset, args.folds, args.device, not args.no_tta,
                       args.step, window_batch_size=args.window_batch, trainer=args.trainer,
                       planner=args.planner, results=args.results, raw=args.raw,
                       expected_sha256=args.sha256, tiling=args.tiling,
                       precision=args.precision, threads=args.threads)
    print(f"model {model.source}: folds {', '.join(model.folds)}, device "
          f"{model.ensemble.device}, TTA {'off' if args.no_tta else 'on'}, tiling "
          f"{args.tiling}")
    estimate = estimate_prediction(args.input, model)
    if args.dry_run:
        print("\n".join(estimate.lines()))
        print("dry run: nothing predicted or written")
        return 0
    lines = estimate.lines()
    print(f"{lines[0]}\n{lines[-1]}")
    started = time.perf_counter()
    report = predict_folder(args.input, args.output, model, args.save_probabilities,
                            args.overwrite, args.channel_names, progress=not args.no_progress)
    counts = {status: len(report.with_status(status))
              for status in ("written", "skipped", "failed")}
    print(f"{counts['written']} written, {counts['skipped']} skipped (already predicted), "
          f"{counts['failed']} failed -> {report.output_dir} in "
          f"{format_seconds(time.perf_counter() - started)}")
    for outcome in report.failed:
        print(f"  failed {outcome.case_id}: {outcome.message}")
    return EXIT_CASES_FAILED if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
