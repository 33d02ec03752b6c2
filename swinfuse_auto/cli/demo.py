"""``demo``: the whole pipeline on the generated example data, with nothing to download.

Generates CT and MR phantoms of one anatomy (CT cases labelled for training, MR cases held out),
plans and preprocesses, pre-trains Swin-DIM on CT and MR together, fine-tunes fold 0 on CT,
predicts the fold's held-out CT cases and the MR cases, evaluates both and prints a Dice table.
On a CPU the budget is a time budget: the demo measures a few steps of the plan's network and
chooses how many fit ``--minutes`` (default 11, so that a fresh set-up of about 4 minutes plus
the demo fit 15 minutes on 2 cores); a GPU gets a fixed, larger budget.
Every stage resumes, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from swinfuse_auto.api.demo import DemoBudget
from swinfuse_auto.cli.common import add_device_flag, add_verbosity_flag, run_command

DEMO_DATASET = "Dataset990_SwinfuseExample"
#: The demo's own time on a CPU; a fresh clone's set-up (venv, pip) takes 2-3 more minutes.
DEFAULT_MINUTES = 11.0
#: Budget by device kind; on a CPU the most the demo takes, cut to --minutes by the measured
#: step time.
BUDGET = {"cpu": DemoBudget(pretrain_iterations=30, epochs=24, iterations_per_epoch=25,
                            learning_rate=1e-2, deep_supervision=True),
          # between the recipe's 2e-4 and the CPU demo's 3e-3; not yet measured on a GPU
          "cuda": DemoBudget(pretrain_iterations=1000, epochs=50, iterations_per_epoch=100,
                             learning_rate=1e-3)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="demo",
        description="Run the whole pipeline on generated CT + MR example data: plan, preprocess, "
                    "pre-train on CT and MR, fine-tune fold 0 on CT, predict held-out CT and all "
                    "MR cases, evaluate, and print Dice per organ.")
    parser.add_argument("--output", default="demo_output", metavar="DIR",
                        help="folder for the raw, preprocessed and results trees (default: "
                             "./demo_output)")
    parser.add_argument("--ct-cases", type=int, default=8, help="CT cases (training)")
    parser.add_argument("--mr-cases", type=int, default=4, help="MR cases (imagesTs, held out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example data")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, metavar="M",
                        help="on a CPU, the time the demo should take: it measures a few steps "
                             "and chooses how many fit (default: %(default)s, so that set-up "
                             "plus demo fit 15 minutes on 2 cores); 0: the full budget")
    parser.add_argument("--pretrain-iterations", type=int, default=None, metavar="N",
                        help="pre-training steps (default: chosen for --minutes, at most 30 on "
                             "a CPU; 1000 on a GPU)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="fine-tuning epochs (default: chosen for --minutes, at most 24 on "
                             "a CPU; 50 on a GPU)")
    parser.add_argument("--iterations-per-epoch", type=int, default=None, metavar="N",
                        help="fine-tuning steps per epoch (default: 25 on a CPU, 100 on a GPU)")
    parser.add_argument("-np", "--num-processes", type=int, default=2, metavar="N",
                        help="worker processes for preprocessing (default: 2)")
    add_device_flag(parser)
    add_verbosity_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from swinfuse_auto.api import DemoSettings, run_demo

    start = time.perf_counter()
    result = run_demo(DemoSettings(
        output=Path(args.output).resolve(), dataset=DEMO_DATASET, ct_cases=args.ct_cases,
        mr_cases=args.mr_cases, seed=args.seed, device=args.device,
        num_processes=args.num_processes, pretrain_iterations=args.pretrain_iterations,
        epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch, budget=BUDGET,
        minutes=args.minutes or None),
        report=lambda line: print(line, flush=True))
    print(result.table)
    print(f"outputs: {result.output}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, run, argv)
