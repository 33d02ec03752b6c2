"""Prediction: load a model once, predict a folder, arrays or SimpleITK images; package a model.

The ``predict`` and ``export_model`` commands are thin wrappers around these functions, and
:class:`~swinfuse_auto.inference.segmentation_model.SegmentationModel` (returned by
:func:`load_model`) gives notebooks and services ``predict_array`` and ``predict_image`` on the
same code path. The inference modules import torch, so they are imported on the first call.

Example:
    >>> from swinfuse_auto.api import load_model, predict_folder
    >>> model = load_model(dataset="Dataset990_SwinfuseExample", device="cpu")
    >>> report = predict_folder("imagesTs", "predictions", model, progress=True)
    >>> [o.case_id for o in report.failed]
    []
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from swinfuse_auto.errors import ConfigError
from swinfuse_auto.io.output_checks import check_output_location, probabilities_bytes
from swinfuse_auto.paths import model_folder_name, resolve_dataset
from swinfuse_auto.registry import DEFAULT_PLANNER, DEFAULT_TRAINER

if TYPE_CHECKING:
    from swinfuse_auto.inference.estimate import PredictionEstimate
    from swinfuse_auto.inference.folder_prediction import PredictionReport
    from swinfuse_auto.inference.input_cases import InputCase
    from swinfuse_auto.inference.segmentation_model import SegmentationModel
    from swinfuse_auto.models.archive import ArchiveInfo

PathLike = str | os.PathLike[str]


def model_dir_for(dataset: PathLike, trainer: str = DEFAULT_TRAINER,
                  planner: str = DEFAULT_PLANNER, results: str | None = None,
                  raw: str | None = None) -> Path:
    """``RESULTS/DatasetXXX_Name/<trainer>__<planner>``, the model folder training writes."""
    location = resolve_dataset(dataset, raw=raw, results=results, require=("results",))
    assert location.results_dir is not None  # guaranteed by require
    return location.results_dir / model_folder_name(trainer, planner)


def _model_location(model: PathLike | None, dataset: PathLike | None, trainer: str,
                    planner: str, results: str | None, raw: str | None) -> Path:
    if model is not None:
        return Path(model)
    if dataset is None:
        raise ConfigError("Say which model to use: a dataset (-d DATASET, with --trainer and "
                          "--planner) or a model folder or archive (-m PATH).")
    return model_dir_for(dataset, trainer, planner, results, raw)


def load_model(model: PathLike | None = None, dataset: PathLike | None = None,
               folds: Sequence[int | str] | None = None, device: str = "auto",
               tta: bool = True, step_fraction: float = 0.5, use_gaussian: bool = True,
               window_batch_size: int | None = None, trainer: str = DEFAULT_TRAINER,
               planner: str = DEFAULT_PLANNER, results: str | None = None,
               raw: str | None = None, expected_sha256: str | None = None, *,
               tiling: str = "window", precision: str = "auto", threads: int | None = None,
               memory_budget_gb: float | None = None) -> SegmentationModel:
    """Load a trained model: a folder or archive (``model``), or a dataset's results folder.

    On a CPU this also sets torch's threads (``threads``; default: torch's count capped at the
    cores this process may use, affinity and cgroup quota included).

    Args:
        model: ``<trainer>__<planner>`` folder or ``export_model`` archive; wins over dataset.
        dataset: dataset name, id or path; the model folder is
            ``RESULTS/<dataset>/<trainer>__<planner>``.
        folds: folds to ensemble (default: every fold with ``checkpoint_final.pt``).
        device: "auto", "cpu" or "cuda".
        tta: mirror along the axes the folds were trained with mirroring (all three: 8 passes
            per tile); False for one pass.
        step_fraction: window step over patch size (0.5 = 50% overlap); larger tiles overlap
            by as many voxels.
        use_gaussian: Gaussian importance weighting of windows.
        window_batch_size: windows per network call (default: 1, the plan's batch for
            patch-sized windows on a GPU).
        trainer, planner, results, raw: locate the model folder from ``dataset``.
        expected_sha256: published digest an archive must have.
        tiling: "window" (patch-sized windows, as training saw them) or "auto" (tiles
            larger than the patch, inside the volume: faster, but the segmentation changes).
        precision: "auto" (measured once per CPU, bf16 on GPUs that support it), "fp32", "bf16".
        threads: torch threads on a CPU (default: see above).
        memory_budget_gb: memory the tiles may use (default: half of what is available).

    Raises:
        CheckpointError: no trained folds, a damaged archive or checkpoint.
        ConfigError: neither model nor dataset, or invalid options.
    """
    from swinfuse_auto.inference.fold_ensemble import PredictionSettings
    from swinfuse_auto.inference.segmentation_model import SegmentationModel
    from swinfuse_auto.models.device import choose_device, configure_cpu_threads

    settings = PredictionSettings(step_fraction, None if tta else (), use_gaussian,
                                  window_batch_size, tiling, precision, memory_budget_gb)
    torch_device = choose_device(device)
    if torch_device.type == "cpu":
        configure_cpu_threads(threads)
    location = _model_location(model, dataset, trainer, planner, results, raw)
    return SegmentationModel.load(location, folds, torch_device, settings, expected_sha256)


def estimate_prediction(input_dir: PathLike, model: SegmentationModel) -> PredictionEstimate:
    """What predicting ``input_dir`` with ``model`` will do and take: cases, tiles per case,
    device, threads, precision, TTA and the estimated wall time, from the image headers and one
    measured forward pass (``predict --dry-run`` prints it).

    Raises:
        DatasetError: the input folder is missing or holds no images.
    """
    import torch

    from swinfuse_auto.inference.estimate import estimate_prediction as estimate
    from swinfuse_auto.inference.input_cases import find_input_cases

    cases = find_input_cases(Path(input_dir), model.num_channels)
    return estimate(model, cases, torch.get_num_threads())


def _check_output_folder(output_dir: Path, cases: Sequence[InputCase], num_classes: int,
                         save_probabilities: bool) -> None:
    """Before any case is predicted: an unwritable folder would otherwise fail every case."""
    needed = probabilities_bytes([p for c in cases for p in c.files[:1]], num_classes) \
        if save_probabilities else 0
    check_output_location(output_dir, "output folder", "-o OUTPUT_DIR", needed,
                          "the probability maps, float32 per class and voxel")


def predict_folder(input_dir: PathLike, output_dir: PathLike, model: SegmentationModel,
                   save_probabilities: bool = False, overwrite: bool = False,
                   channel_names: Sequence[str] | None = None,
                   progress: bool = False) -> PredictionReport:
    """Predict every case of ``input_dir`` (``CASE_0000.nii.gz`` ..., or ``CASE.nii.gz`` for a
    one-channel model) into ``output_dir/CASE.nii.gz`` with the input's exact geometry.

    Cases already predicted are skipped unless ``overwrite``. A bad case is reported in the
    returned report (``report.failed``) and the others are still predicted.

    Raises:
        DatasetError: the input folder is missing or holds no images.
        ConfigError: the output folder is the input folder, cannot be written or lacks room for
            the probabilities, or a wrong number of channel names.
    """
    from swinfuse_auto.api.progress import FolderPredictionBars
    from swinfuse_auto.inference.folder_prediction import FolderOptions, predict_cases
    from swinfuse_auto.inference.input_cases import find_input_cases

    if Path(output_dir).resolve() == Path(input_dir).resolve():
        raise ConfigError(f"The output folder is the input folder ({input_dir}); segmentations "
                          "would later be read as images. Choose another -o folder.")
    if channel_names is not None and len(channel_names) != model.num_channels:
        raise ConfigError(f"{len(channel_names)} channel name(s) given ({', '.join(channel_names)})"
                          f" but the model takes {model.num_channels} channel(s).")
    cases = find_input_cases(Path(input_dir), model.num_channels)
    _check_output_folder(Path(output_dir), cases, model.num_classes, save_probabilities)
    options = FolderOptions(save_probabilities, overwrite,
                            tuple(channel_names) if channel_names else None)
    bars = FolderPredictionBars(len(cases)) if progress else None
    try:
        return predict_cases(model, cases, Path(output_dir), options, bars)
    finally:
        if bars is not None:
            bars.close()


def export_model(output: PathLike, model: PathLike | None = None,
                 dataset: PathLike | None = None, folds: Sequence[int | str] | None = None,
                 trainer: str = DEFAULT_TRAINER, planner: str = DEFAULT_PLANNER,
                 results: str | None = None, raw: str | None = None) -> ArchiveInfo:
    """Write a model folder's final fold checkpoints, plans, dataset.json and postprocessing
    decision to one verified archive for ``predict -m ARCHIVE`` on another machine.

    Args:
        output: the archive file to write (atomically).
        model, dataset, folds, trainer, planner, results, raw: which model, as in
            :func:`load_model`.

    Returns:
        The archive's path, SHA-256 (to publish with it), folds and size.

    Raises:
        CheckpointError: no trained fold, a requested fold unfinished, or an unreadable
            checkpoint (every checkpoint is loaded once first).
        ConfigError: neither model nor dataset, or an unwritable output folder.
    """
    from swinfuse_auto.models.archive import write_model_archive

    location = _model_location(model, dataset, trainer, planner, results, raw)
    return write_model_archive(location, Path(output), folds)
