"""The time a prediction will take, from the image headers and a measured forward pass.

Before any voxel is read, each case's network-space shape follows from its header (size and
spacing, resampled to the plan's spacing; cropping to the non-zero region is not known yet, so
the estimate is an upper bound for images with a zero border), its tiles from the same planner
the prediction uses, and the network time from the calibration's seconds per voxel
(:mod:`swinfuse_auto.inference.calibration`) times the voxels of every tile and pass. Reading,
preprocessing, resampling back and writing add :data:`OTHER_SECONDS_PER_RAW_VOXEL` per raw voxel.
``predict`` prints this before the first case and the measured time after the last, so a wrong
estimate shows at once; ``predict --dry-run`` prints it per case and stops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from swinfuse_auto.errors import DatasetError
from swinfuse_auto.inference.input_cases import InputCase
from swinfuse_auto.inference.segmentation_model import SegmentationModel
from swinfuse_auto.io.image import read_geometry
from swinfuse_auto.maths.resample import shape_for_spacing

#: Reading, preprocessing, resampling back, arg-max and writing, per raw voxel and channel:
#: 512 x 512 x 48 CT (12.6 M voxels) to a 0.6 x 0.6 x 5 mm plan took about 2 s on the 2-core
#: development machine (2.4 s for lung1 of Dataset902 in ``benchmarks/predict.py --compare
#: settings``, 2026-12-02).
OTHER_SECONDS_PER_RAW_VOXEL = 1.6e-7


@dataclass(frozen=True)
class CaseEstimate:
    """One case: its shapes, tiles and predicted seconds (network and the rest)."""

    case_id: str
    raw_shape: tuple[int, int, int]
    network_shape: tuple[int, int, int]
    tile: tuple[int, int, int]
    tiles: int
    network_seconds: float
    other_seconds: float

    @property
    def seconds(self) -> float:
        return self.network_seconds + self.other_seconds


@dataclass(frozen=True)
class PredictionEstimate:
    """The plan of a prediction run and its predicted wall time."""

    cases: tuple[CaseEstimate, ...]
    device: str
    threads: int
    precision: str
    precision_reason: str
    mirror_axes: tuple[int, ...]
    folds: int
    unreadable: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return sum(case.seconds for case in self.cases)

    def lines(self) -> list[str]:
        """The estimate as lines of text (the command prints them)."""
        tta = ("off" if not self.mirror_axes else
               f"mirroring along {'/'.join('zyx'[a] for a in self.mirror_axes)} "
               f"({2 ** len(self.mirror_axes)} passes)")
        out = [f"{len(self.cases)} case(s); device {self.device}, {self.threads} thread(s), "
               f"precision {self.precision_reason}; TTA {tta}; {self.folds} fold(s)"]
        for case in self.cases:
            out.append(f"  {case.case_id}: {'x'.join(map(str, case.raw_shape))} voxels -> "
                       f"{'x'.join(map(str, case.network_shape))} at the plan spacing, "
                       f"{case.tiles} tile(s) of {'x'.join(map(str, case.tile))}, "
                       f"about {format_seconds(case.seconds)}")
        for case_id in self.unreadable:
            out.append(f"  {case_id}: header unreadable, not estimated")
        out.append(f"estimated wall time: {format_seconds(self.seconds)}")
        return out


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 90:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def estimate_case(model: SegmentationModel, case_id: str, size_xyz: Sequence[int],
                  spacing_xyz: Sequence[float]) -> CaseEstimate:
    """Shapes, tiles and seconds of one case from its header values."""
    ensemble = model.ensemble
    raw = tuple(int(s) for s in reversed(tuple(size_xyz)))
    spacing = tuple(float(s) for s in reversed(tuple(spacing_xyz)))
    shape = shape_for_spacing(raw, spacing, model.plan.configuration.spacing)
    grid = ensemble.tile_grid(shape)
    network = ensemble.passes * grid.total_voxels * ensemble.calibration.seconds_per_voxel
    other = OTHER_SECONDS_PER_RAW_VOXEL * math.prod(raw) * model.num_channels
    return CaseEstimate(case_id, raw, tuple(shape), grid.tile,  # type: ignore[arg-type]
                        grid.count, network, other)


def estimate_prediction(model: SegmentationModel, cases: Sequence[InputCase],
                        threads: int) -> PredictionEstimate:
    """The estimate for ``cases`` (headers only; unreadable ones are listed, not estimated)."""
    estimates, unreadable = [], []
    for case in cases:
        if case.problem is not None:  # reported when the case is predicted
            unreadable.append(case.case_id)
            continue
        try:
            geometry = read_geometry(case.files[0])
        except DatasetError:  # a corrupt or non-3D header, also reported when predicted
            unreadable.append(case.case_id)
            continue
        estimates.append(estimate_case(model, case.case_id, geometry.size, geometry.spacing))
    ensemble = model.ensemble
    calibration = ensemble.calibration
    return PredictionEstimate(tuple(estimates), str(ensemble.device), threads,
                              calibration.precision, calibration.reason,
                              tuple(ensemble.mirror_axes), len(ensemble.networks),
                              tuple(unreadable))
