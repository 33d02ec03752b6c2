"""The fold ensemble: load the trained fold models once, predict preprocessed volumes.

Every window batch goes through every fold model (each with its mirrored passes) and their
softmax probabilities are averaged before the Gaussian-weighted window blending. The windows are
patch-sized (``tiling="window"``) or the larger tiles :mod:`swinfuse_auto.inference.tiling`
plans within the memory budget (``"auto"``), and the networks run in the precision
:mod:`swinfuse_auto.inference.calibration` chose for this machine. Probabilities,
not logits, are averaged everywhere (see :mod:`swinfuse_auto.inference.sliding_window`) and both
averages are linear with the same weights for every fold, so the ensemble of N folds equals the
mean of the N single-fold predictions, while memory holds one probability volume whatever the
fold count.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from swinfuse_auto.errors import CheckpointError, ConfigError
from swinfuse_auto.inference.calibration import Calibration, autocast_context, calibrate
from swinfuse_auto.inference.options import PRECISIONS, TILINGS
from swinfuse_auto.inference.sliding_window import Predictor, sliding_window_predict
from swinfuse_auto.inference.tiling import TileGrid, plan_tiles, tile_grid
from swinfuse_auto.inference.tta import SPATIAL_AXES, mirror_axes_combinations, mirrored_predictor
from swinfuse_auto.machine import available_memory_bytes
from swinfuse_auto.models.device import reuse_freed_memory
from swinfuse_auto.models.fold_model import FoldModel, fold_checkpoints, load_fold_model
from swinfuse_auto.networks.cost_model import max_inference_tile_voxels
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.input_scaling import scaling_parameters

logger = logging.getLogger(__name__)

#: Share of the free GPU memory the window sums may take before they move to the CPU; the rest
#: is for the network's activations.
GPU_OUTPUT_SHARE = 0.5
#: Share of the available memory (RAM, or free GPU memory) that tiles may use, after the
#: volume-sized arrays; the rest is left to the reader and writer threads and to other processes.
TILE_MEMORY_SHARE = 0.5
#: Memory assumed available where the system does not say (not Linux).
FALLBACK_MEMORY_BYTES = 4e9


@dataclass(frozen=True)
class PredictionSettings:
    """How each fold model predicts a volume.

    Args:
        step_fraction: window step as a fraction of the patch (0.5 = 50% overlap); tiles larger
            than the patch overlap by the same number of voxels.
        mirror_axes: spatial axes mirrored for test-time augmentation; ``()`` turns TTA off;
            None: the axes the folds were trained with mirroring (all three by default).
        use_gaussian: Gaussian importance weighting of each window (uniform when False).
        window_batch_size: windows per network call; None: 1 on a CPU and for tiles larger than
            the patch, the plan's batch size for patch-sized windows on a GPU.
        tiling: "window" (default): patch-sized windows, as in training; "auto": the tiles
            that predict the fewest voxels within the memory budget
            (:func:`~swinfuse_auto.inference.tiling.plan_tiles`), faster but not the same
            result (see that module's notes).
        precision: "auto" (measured on a CPU, bf16 where supported on a GPU), "fp32" or "bf16"
            (:mod:`swinfuse_auto.inference.calibration`).
        memory_budget_gb: memory the tiles may use; None: :data:`TILE_MEMORY_SHARE` of what is
            available when the volume arrives, less the volume-sized arrays.
    """

    step_fraction: float = 0.5
    mirror_axes: tuple[int, ...] | None = None
    use_gaussian: bool = True
    window_batch_size: int | None = None
    tiling: str = "window"
    precision: str = "auto"
    memory_budget_gb: float | None = None

    def __post_init__(self) -> None:
        if self.mirror_axes is not None:
            mirror_axes_combinations(self.mirror_axes)
        if not 0 < self.step_fraction <= 1:
            raise ConfigError(f"step_fraction must be in (0, 1], got {self.step_fraction}; "
                              "0.5 means 50% overlap between neighbouring windows.")
        if self.window_batch_size is not None and self.window_batch_size < 1:
            raise ConfigError(f"window_batch_size must be at least 1, got "
                              f"{self.window_batch_size}.")
        if self.tiling not in TILINGS:
            raise ConfigError(f"tiling must be one of {', '.join(TILINGS)}, got "
                              f"'{self.tiling}'.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                              f"'{self.precision}'.")
        if self.memory_budget_gb is not None and not self.memory_budget_gb > 0:
            raise ConfigError(f"memory_budget_gb must be positive, got {self.memory_budget_gb}.")


def trained_mirror_axes_of(models: Sequence[FoldModel]) -> tuple[int, ...]:
    """The axes every fold was trained with mirroring (its augmentation's ``mirror_axes``)."""
    axes = set(SPATIAL_AXES)
    for model in models:
        augmentation = model.trainer_config.get("augmentation", {})
        if isinstance(augmentation, dict) and "mirror_axes" in augmentation:
            axes &= {int(a) for a in augmentation["mirror_axes"]}
    return tuple(sorted(axes))


def _check_same_model(models: Sequence[FoldModel]) -> None:
    """Folds are averaged voxel by voxel, so they must share the grid, classes and channels."""
    first = models[0]
    for other in models[1:]:
        if (other.plan.configuration != first.plan.configuration
                or other.input_scaling != first.input_scaling
                or other.plan.architecture.num_classes != first.plan.architecture.num_classes
                or other.plan.architecture.in_channels != first.plan.architecture.in_channels):
            raise CheckpointError(f"fold {other.fold} was trained with another plan than fold "
                                  f"{first.fold} (spacing, patch, normalisation, input scaling "
                                  "or classes differ); they cannot be ensembled. Pass folds of one run "
                                  "with -f, or retrain the odd fold.")


def _network_predictor(network: nn.Module, device: torch.device, precision: str) -> Predictor:
    """The network under bf16 autocast when the calibration chose it, else float32."""

    def predict(batch: torch.Tensor) -> torch.Tensor:
        with autocast_context(device, precision):
            return network(batch)

    return predict


class EnsemblePredictor:
    """Fold networks kept in memory, predicting preprocessed (C, z, y, x) volumes.

    Args:
        networks: one network per fold, in eval mode, on ``device``.
        plan: the plan shared by the folds (patch size, classes).
        dataset_json: the training dataset.json (labels, channel names, file ending).
        folds: fold names, for messages.
        device: where the windows are predicted.
        settings: overlap, mirroring, Gaussian weighting, window batch, tiling, precision.
        input_scaling: the registered input scaling the folds were trained with (their
            trainer config's ``input_scaling``), applied to each whole volume first.
        trained_mirror_axes: the axes the folds were trained with mirroring; test-time
            mirroring uses them when ``settings.mirror_axes`` is None (a flip the network never
            saw in training only adds noise to the average).

    Example:
        >>> ensemble = EnsemblePredictor.from_model_dir(model_dir, device=torch.device("cpu"))
        >>> probabilities = ensemble.predict(preprocessed)  # doctest: +SKIP
    """

    def __init__(self, networks: Sequence[nn.Module], plan: Plan, dataset_json: dict[str, Any],
                 folds: Sequence[str], device: torch.device,
                 settings: PredictionSettings = PredictionSettings(),
                 input_scaling: str = "plan",
                 trained_mirror_axes: tuple[int, ...] = SPATIAL_AXES) -> None:
        if not networks:
            raise CheckpointError("An ensemble needs at least one fold network.")
        self.networks = list(networks)
        self.plan = plan
        self.dataset_json = dataset_json
        self.folds = list(folds)
        self.device = device
        self.settings = settings
        self.input_scaling = input_scaling
        self.mirror_axes = (settings.mirror_axes if settings.mirror_axes is not None
                            else trained_mirror_axes)
        self._calibrations: dict[int, Calibration] = {}

    @classmethod
    def from_fold_models(cls, models: Sequence[FoldModel], device: torch.device,
                         settings: PredictionSettings = PredictionSettings()
                         ) -> EnsemblePredictor:
        """Build each fold's network once; the folds must come from one plan."""
        if not models:
            raise CheckpointError("No fold model was given; pass at least one trained fold.")
        _check_same_model(models)
        networks = [m.build_network(device) for m in models]
        return cls(networks, models[0].plan, models[0].dataset_json, [m.fold for m in models],
                   device, settings, models[0].input_scaling, trained_mirror_axes_of(models))

    @classmethod
    def from_model_dir(cls, model_dir: Path, folds: Sequence[int | str] | None = None,
                       device: torch.device = torch.device("cpu"),
                       settings: PredictionSettings = PredictionSettings()
                       ) -> EnsemblePredictor:
        """Load the final checkpoints of ``folds`` (default: all trained) with weights_only."""
        paths = fold_checkpoints(model_dir, folds)
        return cls.from_fold_models([load_fold_model(p) for p in paths], device, settings)

    @property
    def num_classes(self) -> int:
        return self.plan.architecture.num_classes

    @property
    def in_channels(self) -> int:
        return self.plan.architecture.in_channels

    @property
    def passes(self) -> int:
        """Network passes per tile: folds times mirrored copies."""
        return len(self.networks) * len(mirror_axes_combinations(self.mirror_axes))

    @property
    def calibration(self) -> Calibration:
        """Precision and speed, measured on first use (again when the thread count changes)."""
        threads = torch.get_num_threads()
        if threads not in self._calibrations:
            self._calibrations[threads] = calibrate(
                self.networks[0], self.plan.architecture, self.plan.configuration.patch_size,
                self.device, self.settings.precision)
        return self._calibrations[threads]

    def _window_batch_size(self, grid: TileGrid) -> int:
        if self.settings.window_batch_size is not None:
            return self.settings.window_batch_size
        windows = grid.tile == tuple(self.plan.configuration.patch_size)
        return self.plan.configuration.batch_size if self.device.type == "cuda" and windows else 1

    def memory_budget_bytes(self, spatial_shape: Sequence[int]) -> float:
        """Memory the tiles of a volume of this (padded) shape may use."""
        if self.settings.memory_budget_gb is not None:
            return self.settings.memory_budget_gb * 1e9
        voxels = math.prod(spatial_shape)
        if self.device.type == "cuda":
            available: float = torch.cuda.mem_get_info(self.device)[0]
            volume_bytes = 4.0 * voxels * (self.in_channels + self.num_classes + 1)
        else:
            available = available_memory_bytes() or FALLBACK_MEMORY_BYTES
            # the volume, its padded and scaled copies, the sums and the raw-grid output
            volume_bytes = 4.0 * voxels * (3 * self.in_channels + 2 * (self.num_classes + 1))
        return TILE_MEMORY_SHARE * available - volume_bytes

    def tile_grid(self, spatial_shape: Sequence[int]) -> TileGrid:
        """The tiles of a preprocessed volume of this (z, y, x) shape (padded where smaller
        than the patch)."""
        patch = self.plan.configuration.patch_size
        padded = tuple(max(int(s), int(p)) for s, p in zip(spatial_shape, patch))
        if self.settings.tiling == "window":
            return tile_grid(padded, patch, patch, self.settings.step_fraction)
        batch = self.settings.window_batch_size or 1
        max_voxels = max_inference_tile_voxels(self.plan.architecture,
                                               self.memory_budget_bytes(padded), batch,
                                               self.calibration.precision)
        return plan_tiles(padded, patch, self.plan.architecture.input_divisor, max_voxels,
                          self.settings.step_fraction)

    def _output_device(self, spatial_shape: Sequence[int]) -> torch.device:
        """Keep the sums (K classes plus the weights) on the GPU unless they would crowd it."""
        if self.device.type != "cuda":
            return self.device
        needed = (self.num_classes + 1) * int(np.prod(spatial_shape)) * 4
        free, _ = torch.cuda.mem_get_info(self.device)
        if needed > GPU_OUTPUT_SHARE * free:
            logger.info("probabilities of %s voxels exceed %.0f%% of free GPU memory; "
                        "accumulating on the CPU", tuple(spatial_shape), 100 * GPU_OUTPUT_SHARE)
            return torch.device("cpu")
        return self.device

    def _window_predictor(self) -> Predictor:
        """Per window batch: every fold (each with its mirrored passes), probabilities averaged.

        Averaging the folds per window instead of per volume gives the same result (the windows
        and Gaussian weights are the same for every fold, and both averages are linear) with
        one probability volume in memory and one pass over the windows.
        """
        precision = self.calibration.precision
        members = [_network_predictor(network, self.device, precision)
                   for network in self.networks]
        if self.mirror_axes:
            members = [mirrored_predictor(m, self.mirror_axes) for m in members]
        if len(members) == 1:
            return members[0]
        floor = torch.finfo(torch.float32).tiny

        def predict(batch: torch.Tensor) -> torch.Tensor:
            total = torch.softmax(members[0](batch).float(), dim=1)
            for member in members[1:]:
                total += torch.softmax(member(batch).float(), dim=1)
            return torch.log((total / len(members)).clamp_min(floor))

        return predict

    def _scaled(self, tensor: torch.Tensor) -> torch.Tensor:
        """The volume in the input scaling the networks were trained with."""
        if self.input_scaling == "plan":
            return tensor
        parameters = torch.from_numpy(
            scaling_parameters(tensor.cpu().numpy(), self.input_scaling)).to(tensor.device)
        shape = (-1,) + (1,) * (tensor.ndim - 1)
        return tensor * parameters[:, 0].view(shape) + parameters[:, 1].view(shape)

    def predict(self, volume: np.ndarray | torch.Tensor,
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Mean softmax probabilities (K, z, y, x) of the folds for a preprocessed volume.

        Args:
            volume: (C, z, y, x) float32, preprocessed with the plan.
            progress: ``progress(done, total)`` over the windows (each window runs every fold).

        Returns:
            float32 probabilities on the prediction device (the CPU when they do not fit).

        Raises:
            ConfigError: a volume with the wrong number of channels or dimensions.
        """
        tensor = torch.as_tensor(volume, dtype=torch.float32)
        if tensor.ndim != 4 or tensor.shape[0] != self.in_channels:
            raise ConfigError(f"expected a preprocessed (C, z, y, x) volume with C = "
                              f"{self.in_channels}, found shape {tuple(tensor.shape)}.")
        tensor = self._scaled(tensor).to(self.device)
        grid = self.tile_grid(tensor.shape[1:])
        memory = reuse_freed_memory() if self.device.type == "cpu" else contextlib.nullcontext()
        with memory:
            return sliding_window_predict(
                tensor, self._window_predictor(), self.plan.configuration.patch_size,
                self.num_classes, self.settings.step_fraction, self._window_batch_size(grid),
                self.settings.use_gaussian, self.device, self._output_device(tensor.shape[1:]),
                progress, grid.tile)


def network_volume_predictor(network: nn.Module, plan: Plan, device: torch.device,
                             input_scaling: str = "plan"
                             ) -> Callable[[np.ndarray | torch.Tensor], torch.Tensor]:
    """Whole-volume probabilities of one network (no mirroring), e.g. the one being trained.

    The network is put in eval mode, with its deep-supervision heads off (full-scale logits
    only), for each volume and returned to its state after, so a training run can predict
    between its steps (self-training's pseudo-labels).
    """
    ensemble = EnsemblePredictor([network], plan, {}, ["current"], device,
                                 PredictionSettings(mirror_axes=()), input_scaling)

    def predict(volume: np.ndarray | torch.Tensor) -> torch.Tensor:
        was_training = network.training
        supervised = getattr(network, "deep_supervision", False)
        network.eval()
        if supervised:
            network.deep_supervision = False
        try:
            return ensemble.predict(volume)
        finally:
            if supervised:
                network.deep_supervision = True
            network.train(was_training)

    return predict
