"""A trained model loaded once: preprocess a case, predict it, map it back, postprocess.

:class:`SegmentationModel` is what notebooks, services and the ``predict`` command share: the
command is a loop over a folder around the same four steps (:meth:`~SegmentationModel.prepare`,
:meth:`~SegmentationModel.predict_probabilities`, :meth:`~SegmentationModel.segmentation`,
:meth:`~SegmentationModel.raw_probabilities`), so an array predicted in a notebook and the same
image predicted from disk give identical labels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from swinfuse_auto.dataset.modality import modality_of
from swinfuse_auto.dataset.spec import DatasetSpec, parse_dataset_json
from swinfuse_auto.errors import DatasetError
from swinfuse_auto.inference.fold_ensemble import EnsemblePredictor, PredictionSettings
from swinfuse_auto.inference.postprocessing import (PostprocessingDecision, apply_postprocessing,
                                                    load_postprocessing)
from swinfuse_auto.inference.raw_grid import fill_raw_probabilities, segmentation_to_raw
from swinfuse_auto.io.image import Geometry
from swinfuse_auto.models.archive import extracted_archive, is_model_archive
from swinfuse_auto.models.device import choose_device
from swinfuse_auto.plans.schema import NormalizationPlan, Plan
from swinfuse_auto.preprocessing.case import CaseProperties, RawArrays, preprocess_arrays
from swinfuse_auto.preprocessing.runner import normalization_for

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class PreparedCase:
    """A preprocessed case and what is needed to map its prediction back to the raw grid."""

    data: np.ndarray
    properties: CaseProperties


@dataclass(frozen=True)
class ArrayPrediction:
    """Result of :meth:`SegmentationModel.predict_array`, on the input's grid."""

    segmentation: np.ndarray
    probabilities: np.ndarray | None = None


def check_images(images: np.ndarray, num_channels: int, what: str) -> np.ndarray:
    """(z, y, x) or (C, z, y, x) finite images as (C, z, y, x) float32.

    Raises:
        DatasetError: wrong dimensions or channel count, or NaN/Inf voxels.
    """
    array = np.asarray(images)
    if array.ndim == 3 and num_channels == 1:
        array = array[None]
    if array.ndim != 4 or array.shape[0] != num_channels:
        raise DatasetError(f"{what}: expected a (z, y, x) array for a one-channel model or "
                           f"(C, z, y, x) with C = {num_channels}, found shape {array.shape}.")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise DatasetError(f"{what} contains NaN/Inf voxels; replace them before predicting.")
    return array


class SegmentationModel:
    """The fold ensemble of one trained model, with its plan, labels and postprocessing.

    Args:
        ensemble: the loaded fold networks.
        postprocessing: the summarize_cv decision (empty: none).
        source: where the model came from, for messages.

    Example:
        >>> model = SegmentationModel.load("results/Dataset990_X/swin_dim_finetune__default")
        >>> labels = model.predict_array(ct_zyx, spacing=(2.5, 0.7, 0.7)).segmentation
        >>> label_image = model.predict_image(sitk.ReadImage("ct.nii.gz"))  # doctest: +SKIP
    """

    def __init__(self, ensemble: EnsemblePredictor, postprocessing: PostprocessingDecision,
                 source: str) -> None:
        self.ensemble = ensemble
        self.postprocessing = postprocessing
        self.source = source
        self.spec: DatasetSpec = parse_dataset_json(ensemble.dataset_json,
                                                    Path(source) / "dataset.json")

    @classmethod
    def load(cls, model: str | os.PathLike[str], folds: Sequence[int | str] | None = None,
             device: str | torch.device = "auto",
             settings: PredictionSettings = PredictionSettings(),
             expected_sha256: str | None = None) -> SegmentationModel:
        """Load a model folder or an ``export_model`` archive (verified, weights_only).

        Args:
            model: ``<trainer>__<planner>`` folder or archive file.
            folds: folds to ensemble; default: every fold with a final checkpoint.
            device: "auto", "cpu", "cuda" or a torch device.
            settings: overlap, mirroring, Gaussian weighting, window batch.
            expected_sha256: for archives, the published digest of the file.
        """
        device = device if isinstance(device, torch.device) else choose_device(str(device))
        path = Path(model)
        if is_model_archive(path):
            with extracted_archive(path, expected_sha256) as folder:
                return cls._from_folder(folder, folds, device, settings, str(path))
        return cls._from_folder(path, folds, device, settings, str(path))

    @classmethod
    def _from_folder(cls, folder: Path, folds: Sequence[int | str] | None,
                     device: torch.device, settings: PredictionSettings,
                     source: str) -> SegmentationModel:
        ensemble = EnsemblePredictor.from_model_dir(folder, folds, device, settings)
        decision = load_postprocessing(folder)
        decision.check_classes(ensemble.num_classes, f"{source}/postprocessing.json")
        return cls(ensemble, decision, source)

    @property
    def plan(self) -> Plan:
        return self.ensemble.plan

    @property
    def num_channels(self) -> int:
        return self.ensemble.in_channels

    @property
    def num_classes(self) -> int:
        return self.ensemble.num_classes

    @property
    def folds(self) -> list[str]:
        return list(self.ensemble.folds)

    def normalization(self, case_id: str, channel_names: Sequence[str] | None = None
                      ) -> tuple[tuple[str, ...], list[NormalizationPlan]]:
        """Modalities and normalisation of a case: the given channel names, else dataset.json's
        per-case names (``case_channel_names``), else the training channels'."""
        if channel_names is not None:
            modalities = tuple(modality_of(n).value for n in channel_names)
        else:
            modalities = tuple(m.value for m in self.spec.modalities_for(case_id))
        if len(modalities) != self.num_channels:
            raise DatasetError(f"case {case_id}: {len(modalities)} channel names given for a "
                               f"model with {self.num_channels} channel(s).")
        return modalities, normalization_for(self.plan, self.spec, modalities)

    def prepare(self, images: np.ndarray, geometry: Geometry, case_id: str = "case",
                channel_names: Sequence[str] | None = None) -> PreparedCase:
        """Crop, normalise and resample (C, z, y, x) images exactly as in training."""
        modalities, normalization = self.normalization(case_id, channel_names)
        data, _, box, shape = preprocess_arrays(RawArrays(images), geometry,
                                                self.plan.configuration, normalization)
        return PreparedCase(data, CaseProperties(case_id, geometry, box, shape, modalities))

    def predict_probabilities(self, prepared: PreparedCase,
                              progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Fold-averaged (K, z, y, x) probabilities in network space."""
        return self.ensemble.predict(prepared.data, progress)

    def segmentation(self, probabilities: torch.Tensor, prepared: PreparedCase,
                     postprocess: bool = True) -> np.ndarray:
        """The label map on the raw grid (arg-max after resampling back), postprocessed."""
        labels = segmentation_to_raw(probabilities, prepared.properties,
                                     self.plan.configuration.spacing)
        return apply_postprocessing(labels, self.postprocessing) if postprocess else labels

    def raw_probabilities(self, probabilities: torch.Tensor, prepared: PreparedCase,
                          out: np.ndarray | None = None) -> np.ndarray:
        """(K, z, y, x) float32 probabilities on the raw grid, into ``out`` when given."""
        if out is None:
            out = np.empty((self.num_classes, *prepared.properties.geometry.shape_zyx),
                           dtype=np.float32)
        return fill_raw_probabilities(probabilities, prepared.properties,
                                      self.plan.configuration.spacing, out)

    def predict_array(self, images: np.ndarray, spacing: Sequence[float],
                      return_probabilities: bool = False,
                      channel_names: Sequence[str] | None = None) -> ArrayPrediction:
        """Segment a (z, y, x) or (C, z, y, x) array with voxel ``spacing`` (z, y, x) in mm.

        Returns:
            The postprocessed label map on the input's grid, and optionally the probabilities.
        """
        array = check_images(images, self.num_channels, "images")
        shape = array.shape[1:]
        spacing_xyz = tuple(float(s) for s in reversed(tuple(spacing)))
        if len(spacing_xyz) != 3 or min(spacing_xyz) <= 0:
            raise DatasetError(f"spacing must be three positive values (z, y, x) in mm, found "
                               f"{tuple(spacing)}.")
        geometry = Geometry((shape[2], shape[1], shape[0]), spacing_xyz,  # type: ignore[arg-type]
                            (0.0, 0.0, 0.0), _IDENTITY)
        prepared = self.prepare(array, geometry, "array", channel_names)
        probabilities = self.predict_probabilities(prepared)
        labels = self.segmentation(probabilities, prepared)
        raw = self.raw_probabilities(probabilities, prepared) if return_probabilities else None
        return ArrayPrediction(labels, raw)

    def predict_image(self, images: sitk.Image | Sequence[sitk.Image],
                      channel_names: Sequence[str] | None = None) -> sitk.Image:
        """Segment SimpleITK image(s), one per channel; the label image has their geometry.

        Raises:
            DatasetError: wrong channel count, non-3D images or channels on different grids.
        """
        channels = [images] if isinstance(images, sitk.Image) else list(images)
        if len(channels) != self.num_channels:
            raise DatasetError(f"expected {self.num_channels} channel image(s), got "
                               f"{len(channels)}.")
        if any(image.GetDimension() != 3 for image in channels):
            raise DatasetError("every channel image must be 3D; split 4D series into one image "
                               "per channel.")
        geometries = [Geometry.of(image) for image in channels]
        geometry = geometries[0]
        if any(geometry.mismatch(other) for other in geometries[1:]):
            raise DatasetError("every channel image must be on the same grid (size, spacing, "
                               "origin, direction); resample them onto channel 0.")
        array = check_images(np.stack([sitk.GetArrayViewFromImage(c) for c in channels]),
                             self.num_channels, "images")
        prepared = self.prepare(array, geometry, "image", channel_names)
        labels = self.segmentation(self.predict_probabilities(prepared), prepared)
        return geometry.apply_to(sitk.GetImageFromArray(labels))
