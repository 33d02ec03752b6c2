"""The demo as a function: every stage through the public API, on generated data.

It lives in the API layer because it is a user of the API: the ``demo`` command and
:func:`run_demo` exercise exactly the functions a notebook calls, progress bars included.

The CT held-out cases are the fold-0 validation cases (their images are linked into a folder of
their own, as a user would have them); the MR cases are the dataset's imagesTs, which the
fine-tuning never saw labelled, so the table shows in-modality and out-of-modality Dice side by
side.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swinfuse_auto.api.demo_budget import (MIN_PRETRAIN_STEPS, choose_budget,
                                           fine_tuning_uses_encoder, measure_step_seconds,
                                           plan_input_features)
from swinfuse_auto.api.planning import plan_and_preprocess
from swinfuse_auto.api.prediction import load_model, predict_folder
from swinfuse_auto.api.training import pretrain, train_fold
from swinfuse_auto.dataset.cases import training_cases
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.evaluation.folder_eval import evaluate_folders, from_json_safe
from swinfuse_auto.example_data import generate_example_dataset
from swinfuse_auto.io.atomic import read_json
from swinfuse_auto.io.image import read_image
from swinfuse_auto.paths import SPLITS_FILE
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.visualization.overlays import overlay_png

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoBudget:
    """Training budget of the demo on one kind of device (on a CPU: the most it may take).

    ``learning_rate`` replaces the fine-tuning recipe's rate (None keeps it): the recipe's 2e-4
    suits long GPU runs, while a few hundred CPU steps learn every organ of the example CT at
    1e-2 with deep supervision (benchmarks/ood.py).
    """

    pretrain_iterations: int
    epochs: int
    iterations_per_epoch: int
    learning_rate: float | None = None
    deep_supervision: bool = False


@dataclass(frozen=True)
class DemoSettings:
    """What the demo generates and how long it trains (None: the budget of the device kind).

    Args:
        output: the folder of the raw, preprocessed and results trees and the predictions.
        dataset: the generated dataset's name.
        ct_cases, mr_cases, seed: the generated data (CT labelled, MR held out).
        device: "auto", "cpu" or "cuda".
        num_processes: worker processes of preprocessing.
        pretrain_iterations, epochs, iterations_per_epoch: the budget, overriding ``budget``.
        budget: the budget by device kind ("cpu", "cuda"); on a CPU the most it may take.
        minutes: on a CPU, the time the whole demo should fit: the steps are chosen from the
            measured step time (:mod:`swinfuse_auto.api.demo_budget`); None: the fixed budget.
        progress: draw progress bars.
    """

    output: Path
    dataset: str
    ct_cases: int
    mr_cases: int
    seed: int
    device: str
    num_processes: int
    pretrain_iterations: int | None
    epochs: int | None
    iterations_per_epoch: int | None
    budget: dict[str, DemoBudget]
    minutes: float | None = None
    progress: bool = True


@dataclass(frozen=True)
class DemoResult:
    table: str
    output: Path


def _link_case_images(raw_dir: Path, case_ids: list[str], folder: Path) -> Path:
    """A folder holding (symbolic links to) the images of ``case_ids``, as predict's input."""
    spec = load_dataset_spec(raw_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for case in training_cases(raw_dir, spec):
        if case.case_id in case_ids:
            for path in case.images:
                assert path is not None  # verified dataset
                target = folder / path.name
                if not target.exists():
                    try:
                        os.symlink(path, target)
                    except OSError:  # file systems without symbolic links
                        shutil.copyfile(path, target)
    return folder


def _format_table(label_names: dict[int, str], ct: dict, mr: dict) -> str:
    """Dice per organ of two evaluation summaries (their per-class keys may be int or str)."""
    ct_mean, mr_mean = ({str(k): v for k, v in s["mean"].items()} for s in (ct, mr))
    lines = [f"{'organ':<12} {'CT Dice':>8} {'MR Dice':>8}", "-" * 30]
    for value, name in label_names.items():
        lines.append(f"{name:<12} {ct_mean[str(value)]['dice']:>8.3f} "
                     f"{mr_mean[str(value)]['dice']:>8.3f}")
    lines.append(f"{'mean':<12} {ct['foreground_mean']['dice']:>8.3f} "
                 f"{mr['foreground_mean']['dice']:>8.3f}")
    return "\n".join(lines)


def _write_overlay(raw_dir: Path, case_id: str, split: str, predictions: Path,
                   folder: Path, names: dict[int, str]) -> Path:
    """PNG of the case's first channel with predicted and reference contours."""
    image, geometry = read_image(raw_dir / f"images{split}" / f"{case_id}_0000.nii.gz")
    prediction, _ = read_image(predictions / f"{case_id}.nii.gz", dtype=None)
    reference, _ = read_image(raw_dir / f"labels{split}" / f"{case_id}.nii.gz", dtype=None)
    return overlay_png(image, geometry.spacing_zyx, folder / f"{case_id}.png", prediction,
                       reference, f"{case_id} ({split})", label_names=names)


def _timed_budget(settings: DemoSettings, plan: Plan, budget: DemoBudget, started: float,
                  report: Callable[[str], None]) -> DemoBudget:
    """``budget`` cut to the minutes left, from this machine's measured step times."""
    assert settings.minutes is not None
    steps = measure_step_seconds(plan, budget.deep_supervision)
    left = 60 * settings.minutes - (time.perf_counter() - started)
    per_epoch = settings.iterations_per_epoch or budget.iterations_per_epoch
    most_pretraining = (budget.pretrain_iterations if fine_tuning_uses_encoder(plan)
                        else MIN_PRETRAIN_STEPS)
    chosen = choose_budget(left, steps, most_pretraining, budget.epochs, per_epoch)
    report(f"      time budget {settings.minutes:g} min, {left:.0f} s left after planning: a "
           f"fine-tuning step takes {steps.fine_tuning:.2f} s and a pre-training step "
           f"{steps.pre_training:.2f} s on this machine, so {chosen.pretrain_iterations} "
           f"pre-training and {chosen.epochs} x {chosen.iterations_per_epoch} fine-tuning steps "
           f"(the most is {budget.pretrain_iterations} and {budget.epochs} x "
           f"{budget.iterations_per_epoch}); expected to finish in {chosen.expected_seconds:.0f} s")
    return dataclasses.replace(budget, pretrain_iterations=chosen.pretrain_iterations,
                               epochs=chosen.epochs, iterations_per_epoch=per_epoch)


def _train(settings: DemoSettings, plan: Plan, budget: DemoBudget, roots: dict[str, str],
           report: Callable[[str], None]) -> Path:
    """Stages 3 and 4: pre-train on CT + MR, fine-tune fold 0 on CT; returns the fold folder."""
    epochs = budget.epochs if settings.epochs is None else settings.epochs
    per_epoch = (budget.iterations_per_epoch if settings.iterations_per_epoch is None
                 else settings.iterations_per_epoch)
    iterations = (budget.pretrain_iterations if settings.pretrain_iterations is None
                  else settings.pretrain_iterations)
    report(f"      budget: {iterations} pre-training steps, {epochs} x {per_epoch} fine-tuning "
           "steps" + (f" at learning rate {budget.learning_rate}" if budget.learning_rate else ""))
    encoder = pretrain(settings.dataset, iterations=iterations, device=settings.device,
                       progress=settings.progress, **roots)
    report(f"[3/6] pre-trained on CT + MR: {encoder}")
    uses_encoder = fine_tuning_uses_encoder(plan)
    if not uses_encoder:
        report(f"      fine-tuning starts from random weights: the plan's preset "
               f"{plan.finetuning_preset} feeds the network {plan_input_features(plan)}, and "
               "the intensity-pre-trained encoder measured worse there (README, "
               "out-of-modality results)")
    overrides = [f"learning_rate={budget.learning_rate}"] if budget.learning_rate else []
    overrides += ["deep_supervision=true"] if budget.deep_supervision else []
    fold_dir = train_fold(settings.dataset, 0,
                          pretrain_choice=str(encoder) if uses_encoder else "none", epochs=epochs,
                          iterations_per_epoch=per_epoch, config_overrides=overrides,
                          continue_training=True, device=settings.device,
                          progress=settings.progress, **roots)
    report(f"[4/6] fine-tuned fold 0 on CT: {fold_dir} (curves: {fold_dir / 'progress.png'})")
    return fold_dir


def _predict_and_evaluate(settings: DemoSettings, roots: dict[str, str],
                          report: Callable[[str], None]) -> str:
    """Stages 5 and 6: predict held-out CT and all MR, score them, draw overlays; the table."""
    out, raw_dir = settings.output, Path(roots["raw"]) / settings.dataset
    model = load_model(dataset=settings.dataset, folds=[0], device=settings.device,
                       results=roots["results"], raw=roots["raw"])
    val_ids = read_json(Path(roots["preprocessed"]) / settings.dataset /
                        SPLITS_FILE)[0]["val"]
    ct_input = _link_case_images(raw_dir, val_ids, out / "heldout_ct_images")
    for source, target in ((ct_input, out / "predictions_ct"),
                           (raw_dir / "imagesTs", out / "predictions_mr")):
        predict_folder(source, target, model, progress=settings.progress)
    report(f"[5/6] predicted {len(val_ids)} held-out CT and the MR cases")
    spec = load_dataset_spec(raw_dir)
    label_names = {v: k for k, v in spec.labels.items() if v}
    ct = from_json_safe(evaluate_folders(raw_dir / "labelsTr", out / "predictions_ct",
                                         spec.foreground_labels, cases=val_ids))
    mr = from_json_safe(evaluate_folders(raw_dir / "labelsTs", out / "predictions_mr",
                                         spec.foreground_labels))
    overlays = [_write_overlay(raw_dir, case_id, split, out / f"predictions_{kind}",
                               out / "overlays", label_names)
                for case_id, split, kind in ((val_ids[0], "Tr", "ct"),
                                             (sorted(mr["cases"])[0], "Ts", "mr"))]
    report("[6/6] evaluated (summary.json in each predictions folder); overlays: "
           + ", ".join(str(p) for p in overlays))
    return _format_table(label_names, ct, mr)


def run_demo(settings: DemoSettings, report: Callable[[str], None]) -> DemoResult:
    """Generate, plan, preprocess, pre-train, fine-tune fold 0, predict CT and MR, evaluate.

    ``report`` receives one line per finished stage (the command prints them).
    """
    started = time.perf_counter()
    out = settings.output
    roots = {"raw": str(out / "raw"), "preprocessed": str(out / "preprocessed"),
             "results": str(out / "results")}
    raw_dir = out / "raw" / settings.dataset
    if not (raw_dir / "dataset.json").exists():
        generate_example_dataset(out / "raw", settings.dataset, ct_cases=settings.ct_cases,
                                 mr_cases=settings.mr_cases, seed=settings.seed, overwrite=True)
    report(f"[1/6] example data: {raw_dir}")
    prepared = plan_and_preprocess(settings.dataset, device=settings.device,
                                   num_processes=settings.num_processes, verify=True,
                                   progress=settings.progress, raw=roots["raw"],
                                   preprocessed=roots["preprocessed"])
    config = prepared.plan.configuration
    report(f"[2/6] planned for {prepared.plan.target.kind}: spacing {list(config.spacing)} mm, "
           f"patch {list(config.patch_size)}, feature size "
           f"{prepared.plan.architecture.feature_size}")
    kind = prepared.plan.target.kind
    budget = settings.budget[kind]
    if kind == "cpu" and settings.minutes and settings.epochs is None \
            and settings.pretrain_iterations is None:
        budget = _timed_budget(settings, prepared.plan, budget, started, report)
    _train(settings, prepared.plan, budget, roots, report)
    return DemoResult(_predict_and_evaluate(settings, roots, report), out)
