"""The Python API: one typed function per stage, on the same code path as the commands.

In the order a dataset goes through them:

* :func:`plan_and_preprocess` (:func:`plan_dataset` for the plan alone): verify the raw dataset,
  fingerprint it, plan, write the folds, preprocess every case.
* :func:`pretrain`: self-supervised pre-training of the Swin-DIM encoder on CT and MR.
* :func:`train_fold`: fine-tune one cross-validation fold and validate it at full volume.
* :func:`summarize_cv`: the cross-validation table and the postprocessing decision.
* :func:`load_model` and :func:`predict_folder`: predict a folder; the loaded model's
  ``predict_array`` and ``predict_image`` predict arrays and SimpleITK images;
  :func:`estimate_prediction` says beforehand what a folder will take.
* :func:`export_model`: one verified archive of a trained model, for another machine.
* :func:`evaluate_folders`: Dice, NSD and HD95 of a folder of predictions.
* :func:`run_demo`: all of the above on generated data.

Every command (``plan_and_preprocess``, ``pretrain``, ``train_fold``, ...) parses its flags and
calls one of these. ``progress=True`` draws progress bars. Stages that need torch import it on
their first call, so ``import swinfuse_auto.api`` and planning never pay for it.

Example:
    >>> from swinfuse_auto import api
    >>> api.plan_and_preprocess("Dataset501_Liver", verify=True)  # doctest: +SKIP
    >>> encoder = api.pretrain("Dataset501_Liver")  # doctest: +SKIP
    >>> fold = api.train_fold("Dataset501_Liver", 0, pretrain_choice=str(encoder))  # doctest: +SKIP
    >>> model = api.load_model(dataset="Dataset501_Liver", folds=[0])  # doctest: +SKIP
    >>> report = api.predict_folder("new_cases", "segmentations", model)  # doctest: +SKIP
"""

from __future__ import annotations

from swinfuse_auto.api.demo import DemoBudget, DemoResult, DemoSettings, run_demo
from swinfuse_auto.api.evaluation import evaluate_folders, summarize_cv
from swinfuse_auto.api.planning import (PlanningOutcome, PreprocessResult, plan_and_preprocess,
                                        plan_dataset)
from swinfuse_auto.api.prediction import (estimate_prediction, export_model, load_model,
                                          predict_folder)
from swinfuse_auto.api.training import pretrain, train_fold

__all__ = ["DemoBudget", "DemoResult", "DemoSettings", "PlanningOutcome", "PreprocessResult",
           "estimate_prediction", "evaluate_folders", "export_model", "load_model",
           "plan_and_preprocess", "plan_dataset", "predict_folder", "pretrain", "run_demo",
           "summarize_cv", "train_fold"]
