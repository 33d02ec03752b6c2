"""``demo``: the whole pipeline on the generated example data, with nothing to download.

It runs every stage that exists so far on a small CT + MR phantom dataset and prints where the
outputs are. The dataset is regenerated only when missing, and every stage resumes, so a second
run is quick.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from swinfuse_auto.cli.common import add_verbosity_flag, run_command

DEMO_DATASET = "Dataset990_SwinfuseExample"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="demo",
        description="Generate the example CT + MR dataset and run the pipeline on it: verify, "
                    "fingerprint, plan and preprocess.")
    parser.add_argument("--output", default="demo_output", metavar="DIR",
                        help="folder for the raw, preprocessed and results trees (default: "
                             "./demo_output)")
    parser.add_argument("--ct-cases", type=int, default=8, help="CT cases (training)")
    parser.add_argument("--mr-cases", type=int, default=4, help="MR cases (imagesTs, held out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example data")
    parser.add_argument("-np", "--num-processes", type=int, default=2, metavar="N",
                        help="worker processes (default: 2)")
    add_verbosity_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import plan_and_preprocess
    from swinfuse_auto.example_data import generate_example_dataset

    start = time.perf_counter()
    root = Path(args.output).resolve()
    raw_root, preprocessed_root = root / "raw", root / "preprocessed"
    raw_dir = raw_root / DEMO_DATASET
    if not (raw_dir / "dataset.json").exists():
        generate_example_dataset(raw_root, DEMO_DATASET, ct_cases=args.ct_cases,
                                 mr_cases=args.mr_cases, seed=args.seed, overwrite=True)
    print(f"[1/2] example data: {raw_dir}")
    result = plan_and_preprocess(DEMO_DATASET, device="auto", num_processes=args.num_processes,
                                 verify=True, raw=str(raw_root), preprocessed=str(preprocessed_root),
                                 progress=True)
    config = result.plan.configuration
    print(f"[2/2] plan: spacing {list(config.spacing)} mm, patch {list(config.patch_size)}, "
          f"batch {config.batch_size}, {result.plan.num_folds} folds; "
          f"preprocessed -> {result.preprocessed_dir}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
