"""Out-of-modality experiment: fine-tune on CT only, test on CT (held out), T1 MR and T2 MR.

On the generated example data (CT cases labelled for training; MR cases of other subjects, T1
and T2, with labels the training never sees), every row fine-tunes fold 0 with the same budget
and seed and differs in one thing:

  (a) no pre-training;
  (b) CT-only pre-training (the density term has no MR and is off);
  (c) CT + MR pre-training with the DIM and the density-matching term;
  (d) (c) plus the shape-over-intensity fine-tuning (per-image input scaling, class-aware
      location-scale curves, GIN with IPA);
  (e) (d) plus self-training on the dataset's unlabelled MR;
  ablations: (d) without the DIM, (d) without the density term, (d) from no pre-training.

Rows (a)-(c) use the recipe from before the cross-modality work (preset nnunet_intensity), (d)
and the ablations shape_over_intensity, (e) cross_modality. CT Dice is fold 0's full-volume
validation; MR Dice is ``predict`` (default TTA) on imagesTs scored against labelsTs, per
contrast. Every stage resumes and every finished row is cached in results.json, so an
interrupted run continues where it stopped.

    .venv/bin/python benchmarks/ood.py --pretrain-iterations 300 --epochs 24 --iterations-per-epoch 20 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench_common import DATASET, example_workspace, pretrain_on
from swinfuse_auto import api
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.evaluation.folder_eval import evaluate_folders
from swinfuse_auto.preprocessing.cache import LABELLED_FOLDER, UNLABELLED_FOLDER, CaseStore


@dataclass(frozen=True)
class Row:
    label: str
    pretraining: str | None  # key of PRETRAININGS, None: random initialisation
    preset: str
    planner: str = "default"


#: name -> (stores: "ct" or "ctmr", density weight override, planner)
PRETRAININGS = {"ct": ("ct", None, "default"), "ctmr": ("ctmr", None, "default"),
                "ctmr_no_density": ("ctmr", 0.0, "default"),
                "ctmr_no_dim": ("ctmr", None, "no_dim")}
ROWS = {
    "a": Row("(a) no pre-training", None, "nnunet_intensity"),
    "b": Row("(b) CT-only pre-training", "ct", "nnunet_intensity"),
    "c": Row("(c) CT + MR pre-training (DIM + density)", "ctmr", "nnunet_intensity"),
    "d": Row("(d) (c) + shape-over-intensity fine-tuning", "ctmr", "shape_over_intensity"),
    "e": Row("(e) (d) + self-training on the unlabelled MR", "ctmr", "cross_modality"),
    "d_no_dim": Row("(d) without the DIM", "ctmr_no_dim", "shape_over_intensity", "no_dim"),
    "d_no_density": Row("(d) without the density term", "ctmr_no_density",
                        "shape_over_intensity"),
    "d_no_pretraining": Row("(d) from no pre-training", None, "shape_over_intensity"),
    "e_no_pretraining": Row("(e) from no pre-training", None, "cross_modality"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="bench_output/ood")
    parser.add_argument("--ct-cases", type=int, default=10)
    parser.add_argument("--mr-cases", type=int, default=6, help="MR cases (half T1, half T2)")
    parser.add_argument("--pretrain-iterations", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--iterations-per-epoch", type=int, default=25)
    parser.add_argument("--learning-rate", type=float, default=1e-2,
                        help="fine-tuning learning rate (1e-2 with deep supervision learns every "
                             "organ of the example CT in 600 steps; the recipe's 2e-4 is for "
                             "long GPU runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="seeds of the fine-tuning; rows in --repeat run with every seed")
    parser.add_argument("--repeat", default="a,e", help="rows run with every seed")
    parser.add_argument("--rows", default=",".join(ROWS), help="rows to run, comma-separated")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        metavar="KEY=VALUE", help="extra trainer setting for every row "
                        "(screening; the tag of the rows changes with it)")
    parser.add_argument("--tag", default="", help="suffix of the cached rows (screening runs)")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def mean_dice(summary: dict[str, Any]) -> tuple[float, dict[str, float]]:
    per_class = {str(k): float(v["dice"]) for k, v in summary["mean"].items()}
    return float(summary["foreground_mean"]["dice"]), per_class


def encoder_for(key: str | None, work: Path, roots: dict[str, dict[str, Any]],
                args: argparse.Namespace) -> Path | None:
    """The pre-trained encoder of PRETRAININGS[key] (trained once, then reused)."""
    if key is None:
        return None
    stores_key, density, planner = PRETRAININGS[key]
    prepared = roots[planner]["prepared"]
    pre = prepared.preprocessed_dir
    stores = [CaseStore(pre / LABELLED_FOLDER)]
    if stores_key == "ctmr":
        stores.append(CaseStore(pre / UNLABELLED_FOLDER))
    folder = work / f"pretrain_{key}"
    pretrain_on(prepared.plan, stores, folder, args.pretrain_iterations, 0, args.device,
                density_weight=density)
    return folder / "pretrained_encoder.pt"


def mr_dice_by_contrast(raw_dir: Path, predictions: Path) -> dict[str, Any]:
    spec = load_dataset_spec(raw_dir)
    result = {}
    for contrast in ("T1", "T2"):
        cases = sorted(c for c, names in spec.case_channel_names.items() if names[0] == contrast)
        summary = evaluate_folders(raw_dir / "labelsTs", predictions, spec.foreground_labels,
                                   cases=cases)
        result[contrast], result[f"{contrast}_per_class"] = mean_dice(summary)
    return result


def run_row(key: str, seed: int, work: Path, roots: dict[str, dict[str, Any]],
            args: argparse.Namespace) -> dict[str, Any]:
    row = ROWS[key]
    name = f"{key}_seed{seed}{args.tag}"
    encoder = encoder_for(row.pretraining, work, roots, args)
    folders = {**roots[row.planner]["roots"], "results": str(work / f"results_{name}")}
    overrides = [f"seed={seed}", f"learning_rate={args.learning_rate}", "deep_supervision=true",
                 *args.overrides]
    start = time.perf_counter()
    fold_dir = api.train_fold(DATASET, 0, pretrain_choice=str(encoder) if encoder else "none",
                              planner=row.planner, preset=row.preset, epochs=args.epochs,
                              iterations_per_epoch=args.iterations_per_epoch,
                              config_overrides=overrides, continue_training=True,
                              device=args.device, **folders)
    seconds = time.perf_counter() - start
    ct, ct_classes = mean_dice(json.loads((fold_dir / "validation" / "summary.json").read_text()))
    raw_dir = Path(folders["raw"]) / DATASET
    model = api.load_model(dataset=DATASET, folds=[0], device=args.device, planner=row.planner,
                           results=folders["results"], raw=folders["raw"])
    predictions = work / f"predictions_mr_{name}"
    api.predict_folder(raw_dir / "imagesTs", predictions, model)
    return {"row": key, "seed": seed, "CT": ct, "CT_per_class": ct_classes,
            **mr_dice_by_contrast(raw_dir, predictions), "fine_tune_seconds": seconds}


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(results: dict[str, dict[str, Any]], keys: list[str]) -> list[str]:
    lines = ["| row | CT Dice | MR-T1 Dice | MR-T2 Dice | seeds |", "|---|---|---|---|---|"]
    for key in keys:
        runs = [r for r in results.values() if r["row"] == key]
        if runs:
            cells = [_cell([r[c] for r in runs]) for c in ("CT", "T1", "T2")]
            lines.append(f"| {ROWS[key].label} | " + " | ".join(cells)
                         + f" | {len(runs)} |")
    return lines


def main() -> None:
    args = parse_args()
    work = Path(args.workdir).resolve()
    roots: dict[str, dict[str, Any]] = {}
    keys = [k for k in args.rows.split(",") if k]
    for planner in sorted({ROWS[k].planner for k in keys}):
        folders, prepared = example_workspace(work, args.ct_cases, args.mr_cases, 0, args.device,
                                              planner=planner)
        roots[planner] = {"roots": folders, "prepared": prepared}
    cache = work / f"results{args.tag}.json"
    results = json.loads(cache.read_text())["rows"] if cache.exists() else {}
    for key in keys:
        for seed in (args.seeds if key in args.repeat.split(",") else args.seeds[:1]):
            name = f"{key}_seed{seed}"
            if name not in results:
                results[name] = run_row(key, seed, work, roots, args)
                cache.write_text(json.dumps({"args": vars(args), "rows": results}, indent=2))
            r = results[name]
            print(f"{ROWS[key].label}, seed {seed}: CT {r['CT']:.3f}, T1 {r['T1']:.3f}, "
                  f"T2 {r['T2']:.3f}", flush=True)
    plan = roots["default"]["prepared"].plan if "default" in roots else None
    print(f"\n{platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          + (f"{plan.target.kind} plan: patch {list(plan.configuration.patch_size)}, feature "
             f"size {plan.architecture.feature_size}; " if plan else "")
          + f"{args.ct_cases} CT (fold 0) + {args.mr_cases} MR; pre-training "
          f"{args.pretrain_iterations} steps; fine-tuning {args.epochs} x "
          f"{args.iterations_per_epoch} steps at lr {args.learning_rate}; seeds {args.seeds} "
          f"(rows {args.repeat})\n")
    print("\n".join(table(results, keys)))
    print("\nper organ (CT / T1 / T2):")
    for name, r in results.items():
        organs = ", ".join(f"{k} {r['CT_per_class'][k]:.2f}/{r['T1_per_class'][k]:.2f}/"
                           f"{r['T2_per_class'][k]:.2f}" for k in r["CT_per_class"])
        print(f"  {name}: {organs}")


if __name__ == "__main__":
    main()
