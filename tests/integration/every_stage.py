"""Every stage of the pipeline on one raw dataset, as a user runs the commands with the defaults.

Shared by the integration tests on generated datasets with awkward shapes and on the real volumes
of ``../shared/data`` (``../shared/tools/real_data_smoke.sh`` does the same from the shell). The
budgets are tiny: the point is that every plan the planner writes can be pre-trained, fine-tuned,
predicted with and evaluated, not what the network learns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from swinfuse_auto.cli import evaluate, plan_and_preprocess, predict, pretrain, train_fold

Command = Callable[[Sequence[str] | None], int]


def _first_cases(raw_dataset: Path, count: int, work: Path) -> tuple[Path, Path]:
    """Folders of links to the images (every channel) and labels of the first ``count`` cases
    of imagesTr, for a prediction that need not cover every training case."""
    images, labels = work / "predict_images", work / "predict_labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    cases = sorted(p.name for p in (raw_dataset / "labelsTr").iterdir())[:count]
    for name in cases:
        case_id = name.split(".")[0]
        (labels / name).symlink_to(raw_dataset / "labelsTr" / name)
        for image in (raw_dataset / "imagesTr").glob(f"{case_id}_[0-9][0-9][0-9][0-9].*"):
            (images / image.name).symlink_to(image)
    return images, labels


def run_every_stage(raw_dataset: Path, work: Path, predict_cases: int | None = None
                    ) -> dict[str, float]:
    """plan_and_preprocess --verify, pretrain, train_fold all (--pretrain auto), predict (no TTA)
    on imagesTr (its first ``predict_cases`` cases; all by default) and evaluate against
    labelsTr; returns the seconds of each stage.

    Raises:
        AssertionError: naming the stage whose command did not exit 0.
    """
    roots = ["--preprocessed", str(work / "preprocessed"), "--results", str(work / "results")]
    dataset = str(raw_dataset)
    predictions = work / "predictions"
    images, labels = raw_dataset / "imagesTr", raw_dataset / "labelsTr"
    if predict_cases is not None:
        images, labels = _first_cases(raw_dataset, predict_cases, work)
    stages: list[tuple[str, Command, list[str]]] = [
        ("plan_and_preprocess", plan_and_preprocess.main,
         ["-d", dataset, "--verify", "-np", "1", "--no-progress", "--preprocessed",
          str(work / "preprocessed")]),
        ("pretrain", pretrain.main, [dataset, "--iterations", "2", "--no-progress", *roots]),
        ("train_fold", train_fold.main,
         [dataset, "all", "--epochs", "1", "--iterations-per-epoch", "2", "--no-progress",
          *roots]),
        ("predict", predict.main,
         ["-i", str(images), "-o", str(predictions), "-d", dataset, "-f",
          "all", "--no-tta", "--no-progress", *roots]),
        ("evaluate", evaluate.main,
         ["-r", str(labels), "-p", str(predictions), "-d", dataset]),
    ]
    seconds = {}
    for name, command, argv in stages:
        started = time.perf_counter()
        code = command(argv)
        seconds[name] = time.perf_counter() - started
        assert code == 0, f"{name} exited {code} on {raw_dataset.name} ({argv})"
    return seconds
