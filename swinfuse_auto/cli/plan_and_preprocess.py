"""``plan_and_preprocess -d DATASET``: verify, fingerprint, plan and preprocess a raw dataset."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from swinfuse_auto.cli.common import add_root_flags, add_verbosity_flag, run_command
from swinfuse_auto.registry import DEFAULT_PLANNER


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plan_and_preprocess",
        description="Check a raw dataset (nnU-Net v2 layout), fingerprint it, write plans.json "
                    "and splits_final.json, and preprocess every case. Re-running skips finished "
                    "cases and keeps a hand-edited plans.json of the same planner and target.")
    parser.add_argument("-d", "--dataset", required=True,
                        help="dataset folder name (Dataset501_Liver), numeric id (501) or path")
    parser.add_argument("--verify", action="store_true",
                        help="full integrity check reading every voxel (NaN/Inf, label values, "
                             "empty images); a header-only check always runs")
    parser.add_argument("-np", "--num-processes", type=int, default=None, metavar="N",
                        help="worker processes for verification, fingerprint and preprocessing "
                             "(default: number of CPU cores, at most 8)")
    parser.add_argument("--gpu-memory-gb", type=float, default=None, metavar="G",
                        help="plan for a GPU with this much memory (default: the visible GPU, "
                             "or this machine's CPU and RAM when there is none)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="device to plan for when --gpu-memory-gb is not given")
    parser.add_argument("--planner", default=DEFAULT_PLANNER,
                        help="registered planner name (built in: default, no_dim)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_root_flags(parser)
    add_verbosity_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import plan_and_preprocess
    from swinfuse_auto.io.output_checks import check_preprocessing_output

    if args.num_processes is not None and args.num_processes < 1:
        from swinfuse_auto.errors import ConfigError

        raise ConfigError(f"-np must be at least 1, found {args.num_processes}.")
    check_preprocessing_output(args.dataset, args.raw, args.preprocessed)
    result = plan_and_preprocess(args.dataset, planner=args.planner,
                                 gpu_memory_gb=args.gpu_memory_gb, device=args.device,
                                 num_processes=args.num_processes, verify=args.verify,
                                 raw=args.raw, preprocessed=args.preprocessed,
                                 progress=not args.no_progress)
    config = result.plan.configuration
    print(f"plan: spacing {list(config.spacing)} mm, patch {list(config.patch_size)}, batch "
          f"{config.batch_size}, feature size {result.plan.architecture.feature_size}, "
          f"{result.plan.num_folds} folds ({'kept existing' if result.plan_reused else 'new'})")
    print(f"preprocessed {result.cases_done} case(s), {result.cases_skipped} already done -> "
          f"{result.preprocessed_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
