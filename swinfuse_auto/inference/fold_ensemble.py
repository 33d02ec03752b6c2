"""The fold ensemble: load the trained fold models once, predict preprocessed volumes.

Every window batch goes through every fold model (each with its mirrored passes) and their
softmax probabilities are averaged before the Gaussian-weighted window blending. Probabilities,
not logits, are averaged everywhere (see :mod:`swinfuse_auto.inference.sliding_window`) and both
averages are linear with the same weights for every fold, so the ensemble of N folds equals the
mean of the N single-fold predictions, while memory holds one probability volume whatever the
fold count.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from swinfuse_auto.errors import CheckpointError, ConfigError
from swinfuse_auto.inference.sliding_window import Predictor, sliding_window_predict
from swinfuse_auto.inference.tta import SPATIAL_AXES, mirror_axes_combinations, mirrored_predictor
from swinfuse_auto.models.device import autocast_dtype
from swinfuse_auto.models.fold_model import FoldModel, fold_checkpoints, load_fold_model
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.input_scaling import scaling_parameters

logger = logging.getLogger(__name__)

#: Share of the free GPU memory the window sums may take before they move to the CPU; the rest
#: is for the network's activations.
GPU_OUTPUT_SHARE = 0.5


@dataclass(frozen=True)
class PredictionSettings:
    """How each fold model predicts a volume.

    Args:
        step_fraction: window step as a fraction of the patch (0.5 = 50% overlap).
        mirror_axes: spatial axes mirrored for test-time augmentation; ``()`` turns TTA off.
        use_gaussian: Gaussian importance weighting of each window (uniform when False).
        window_batch_size: windows per network call; None: 1 on a CPU, the plan's batch size on
            a GPU (inference needs less memory than the training step the plan was sized for).
    """

    step_fraction: float = 0.5
    mirror_axes: tuple[int, ...] = SPATIAL_AXES
    use_gaussian: bool = True
    window_batch_size: int | None = None

    def __post_init__(self) -> None:
        mirror_axes_combinations(self.mirror_axes)
        if not 0 < self.step_fraction <= 1:
            raise ConfigError(f"step_fraction must be in (0, 1], got {self.step_fraction}; "
                              "0.5 means 50% overlap between neighbouring windows.")
        if self.window_batch_size is not None and self.window_batch_size < 1:
            raise ConfigError(f"window_batch_size must be at least 1, got "
                              f"{self.window_batch_size}.")


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


def _network_predictor(network: nn.Module, device: torch.device) -> Predictor:
    """The network under bf16 autocast on GPUs that support it (as in training), fp32 on CPU."""
    dtype = autocast_dtype(device)

    def predict(batch: torch.Tensor) -> torch.Tensor:
        context = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                   else contextlib.nullcontext())
        with context:
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
        settings: overlap, mirroring, Gaussian weighting, window batch.
        input_scaling: the registered input scaling the folds were trained with (their
            trainer config's ``input_scaling``), applied to each whole volume first.

    Example:
        >>> ensemble = EnsemblePredictor.from_model_dir(model_dir, device=torch.device("cpu"))
        >>> probabilities = ensemble.predict(preprocessed)  # doctest: +SKIP
    """

    def __init__(self, networks: Sequence[nn.Module], plan: Plan, dataset_json: dict[str, Any],
                 folds: Sequence[str], device: torch.device,
                 settings: PredictionSettings = PredictionSettings(),
                 input_scaling: str = "plan") -> None:
        if not networks:
            raise CheckpointError("An ensemble needs at least one fold network.")
        self.networks = list(networks)
        self.plan = plan
        self.dataset_json = dataset_json
        self.folds = list(folds)
        self.device = device
        self.settings = settings
        self.input_scaling = input_scaling

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
                   device, settings, models[0].input_scaling)

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

    def _window_batch_size(self) -> int:
        if self.settings.window_batch_size is not None:
            return self.settings.window_batch_size
        return self.plan.configuration.batch_size if self.device.type == "cuda" else 1

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
        members = [_network_predictor(network, self.device) for network in self.networks]
        if self.settings.mirror_axes:
            members = [mirrored_predictor(m, self.settings.mirror_axes) for m in members]
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
        return sliding_window_predict(
            tensor, self._window_predictor(), self.plan.configuration.patch_size,
            self.num_classes, self.settings.step_fraction, self._window_batch_size(),
            self.settings.use_gaussian, self.device, self._output_device(tensor.shape[1:]),
            progress)


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
