"""Does the data loader hold training back? Per-iteration data wait vs compute.

Plans and preprocesses the generated example data for this machine, then runs fine-tuning and
pre-training for a few epochs with background loader workers (the default) and with none
(batches made in the training process: what the step would cost if loading were not
overlapped). The training loop records, per epoch, the time spent waiting for the next batch
and the time of the step itself; the first epoch includes the workers' start-up and is shown
apart. Target: waiting is at most 10% of compute in steady state with the default workers.

    .venv/bin/python benchmarks/training.py --epochs 4 --iterations-per-epoch 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from bench_common import DATASET, example_workspace
from swinfuse_auto import api
from swinfuse_auto.training.config import TrainerConfig

TARGET = 0.10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="bench_output/training")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iterations-per-epoch", type=int, default=20)
    parser.add_argument("--workers", type=int, default=TrainerConfig.num_workers,
                        help="loader workers of the default run (the trainers' default)")
    parser.add_argument("--device", default="auto")
    return parser.parse_args()


def split(log: Path) -> dict[str, float]:
    """Mean per-iteration wait and compute (ms) of the first epoch and of the rest."""
    epochs = json.loads(log.read_text())["epochs"]
    per_epoch = [(e["data_wait_s"], e["compute_s"]) for e in epochs]
    first, rest = per_epoch[0], per_epoch[1:] or per_epoch[:1]
    return {"first_wait": first[0], "first_compute": first[1],
            "wait": sum(w for w, _ in rest), "compute": sum(c for _, c in rest),
            "epochs": len(rest)}


def run(stage: str, workers: int, roots: dict[str, str], args: argparse.Namespace) -> Path:
    overrides = [f"num_workers={workers}"]
    if stage == "finetune":
        fold_dir = api.train_fold(DATASET, 0, pretrain_choice="none", epochs=args.epochs,
                                  iterations_per_epoch=args.iterations_per_epoch,
                                  config_overrides=overrides, validate=False,
                                  device=args.device, **roots)
        return fold_dir / "training_log.json"
    encoder = api.pretrain(DATASET, iterations=args.epochs * args.iterations_per_epoch,
                           config_overrides=overrides + [
                               f"iterations_per_epoch={args.iterations_per_epoch}"],
                           device=args.device, **roots)
    return encoder.parent / "training_log.json"


def main() -> None:
    args = parse_args()
    work = Path(args.workdir).resolve()
    base_roots, prepared = example_workspace(work, ct_cases=8, mr_cases=4, device=args.device)
    config = prepared.plan.configuration
    print(f"{platform.node()}: {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), load {os.getloadavg()[0]:.2f}; "
          f"{prepared.plan.target.kind} plan: patch {list(config.patch_size)}, batch "
          f"{config.batch_size}, feature size {prepared.plan.architecture.feature_size}; "
          f"{args.epochs} epochs x {args.iterations_per_epoch} iterations")
    print(f"{'stage':<9} {'workers':>7} {'wait ms/it':>10} {'compute ms/it':>13} "
          f"{'wait/compute':>12} {'1st epoch wait s':>16}  verdict")
    results = {}
    for stage in ("finetune", "pretrain"):
        for workers in (args.workers, 0):
            results_root = work / f"results_{stage}_{workers}"
            shutil.rmtree(results_root, ignore_errors=True)
            roots = {**base_roots, "results": str(results_root)}
            start = time.perf_counter()
            figures = split(run(stage, workers, roots, args))
            iterations = figures["epochs"] * args.iterations_per_epoch
            ratio = figures["wait"] / figures["compute"]
            verdict = ("PASS" if ratio <= TARGET else "FAIL") if workers else "(reference)"
            print(f"{stage:<9} {workers:>7} {1000 * figures['wait'] / iterations:>10.1f} "
                  f"{1000 * figures['compute'] / iterations:>13.1f} {ratio:>12.3f} "
                  f"{figures['first_wait']:>16.2f}  {verdict}", flush=True)
            results[f"{stage}_workers{workers}"] = {
                **figures, "ratio": ratio, "wall_s": time.perf_counter() - start}
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"target: wait/compute <= {TARGET} with {args.workers} workers "
          f"(after the first epoch); details in {work / 'results.json'}")


if __name__ == "__main__":
    main()
