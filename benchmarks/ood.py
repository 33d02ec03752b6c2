"""Out-of-modality experiment: fine-tune on CT only, test on CT (held out) and on MR.

The SwinFUSE claim: pre-training on CT and MR together, with the domain-invariance module and
the density-matching term, costs little in-modality and gains much out-of-modality. Three
encoders start the same fine-tuning (same fold, seed and budget) on the generated example data:

  (a) no pre-training (random initialisation);
  (b) pre-training on the CT images only (the DIM is there; the density term has no MR to match);
  (c) pre-training on CT + MR with the DIM and the density-matching term (the plan's recipe).

CT Dice is fold 0's full-volume validation of its held-out CT cases; MR Dice is ``predict`` on the
MR cases of imagesTs, which fine-tuning never saw. Every stage resumes, so an interrupted run
continues where it stopped.

    .venv/bin/python benchmarks/ood.py --pretrain-iterations 300 --epochs 24 --iterations-per-epoch 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from bench_common import DATASET, example_workspace, pretrain_on
from swinfuse_auto import api
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.evaluation.folder_eval import evaluate_folders
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore

VARIANTS = {"a": "(a) no pre-training", "b": "(b) CT-only pre-training",
            "c": "(c) CT+MR pre-training, DIM + density matching"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="bench_output/ood")
    parser.add_argument("--ct-cases", type=int, default=10)
    parser.add_argument("--mr-cases", type=int, default=6)
    parser.add_argument("--pretrain-iterations", type=int, default=300)
    parser.add_argument("--pretrain-learning-rate", type=float, default=None,
                        help="pre-training learning rate (default: the plan's)")
    parser.add_argument("--density-weight", type=float, default=None,
                        help="density-matching weight of (c) (default: the plan's)")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--iterations-per-epoch", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=3e-3,
                        help="fine-tuning learning rate (3e-3 suits these short budgets)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", default="abc", help="subset of 'abc' to run")
    return parser.parse_args()


def mean_dice(summary: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """Foreground-mean Dice and Dice per class of an evaluation summary."""
    per_class = {str(k): float(v["dice"]) for k, v in summary["mean"].items()}
    return float(summary["foreground_mean"]["dice"]), per_class


def run_variant(key: str, encoder: Path | None, roots: dict[str, str], work: Path,
                args: argparse.Namespace) -> dict[str, Any]:
    results = {**roots, "results": str(work / f"results_{key}")}
    start = time.perf_counter()
    overrides = [f"seed={args.seed}", f"learning_rate={args.learning_rate}"]
    fold_dir = api.train_fold(DATASET, 0, pretrain_choice=str(encoder) if encoder else "none",
                              epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
                              config_overrides=overrides, continue_training=True,
                              device=args.device, **results)
    train_seconds = time.perf_counter() - start
    ct_dice, ct_classes = mean_dice(json.loads((fold_dir / "validation" / "summary.json")
                                               .read_text()))
    raw_dir = Path(roots["raw"]) / DATASET
    model = api.load_model(dataset=DATASET, folds=[0], device=args.device,
                           results=results["results"], raw=roots["raw"])
    predictions = work / f"predictions_mr_{key}"
    api.predict_folder(raw_dir / "imagesTs", predictions, model)
    spec = load_dataset_spec(raw_dir)
    mr_dice, mr_classes = mean_dice(evaluate_folders(raw_dir / "labelsTs", predictions,
                                                     spec.foreground_labels))
    return {"ct_dice": ct_dice, "mr_dice": mr_dice, "ct_per_class": ct_classes,
            "mr_per_class": mr_classes, "fine_tune_seconds": train_seconds}


def main() -> None:
    args = parse_args()
    work = Path(args.workdir).resolve()
    roots, prepared = example_workspace(work, args.ct_cases, args.mr_cases, args.seed,
                                        args.device)
    plan = prepared.plan
    ct_store = CaseStore(prepared.preprocessed_dir / LABELLED_FOLDER)
    mr_store = CaseStore(prepared.preprocessed_dir / UNLABELLED_FOLDER)
    encoders: dict[str, Path | None] = {"a": None}
    pretrain_seconds = {"a": 0.0}
    for key, stores in (("b", [ct_store]), ("c", [ct_store, mr_store])):
        if key in args.variants:
            folder = work / f"pretrain_{key}"
            pretrain_seconds[key] = pretrain_on(plan, stores, folder, args.pretrain_iterations,
                                                args.seed, args.device,
                                                density_weight=args.density_weight,
                                                learning_rate=args.pretrain_learning_rate)
            encoders[key] = folder / "pretrained_encoder.pt"
    rows = {}
    for key in args.variants:
        rows[key] = {**run_variant(key, encoders[key], roots, work, args),
                     "pretrain_seconds": pretrain_seconds[key]}
        print(f"{VARIANTS[key]}: CT {rows[key]['ct_dice']:.3f}, MR {rows[key]['mr_dice']:.3f}",
              flush=True)
    config = plan.configuration
    print(f"\n{platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{plan.target.kind} plan: patch {list(config.patch_size)}, feature size "
          f"{plan.architecture.feature_size}; {args.ct_cases} CT ({len(ct_store.case_ids())} "
          f"preprocessed, fold 0) + {args.mr_cases} MR; pre-training {args.pretrain_iterations} "
          f"iterations, fine-tuning {args.epochs} x {args.iterations_per_epoch} iterations, "
          f"seed {args.seed}\n")
    print("| encoder | CT Dice (in-modality) | MR Dice (out-of-modality) |")
    print("|---|---|---|")
    for key, row in rows.items():
        print(f"| {VARIANTS[key]} | {row['ct_dice']:.3f} | {row['mr_dice']:.3f} |")
    (work / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
