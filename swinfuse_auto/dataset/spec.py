"""dataset.json parsed once into a typed, validated :class:`DatasetSpec`.

The layout is nnU-Net v2's, so an existing nnU-Net dataset works unchanged: ``channel_names``
{"0": "CT"}, ``labels`` name -> int (consecutive from 0, "background" 0), ``numTraining`` and
``file_ending``. One extension: the optional key ``case_channel_names`` maps a case id to its own
channel names (``{"mr_000": {"0": "T1"}}``), so a dataset whose training cases are CT can keep
MR cases in imagesTs, tagged as MR, for CT+MR pre-training and out-of-modality tests. Region labels (a list of ints) are accepted and kept but the current trainers
train on the integer classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swinfuse_auto.dataset.modality import Modality, modality_of
from swinfuse_auto.errors import DatasetError
from swinfuse_auto.io.atomic import read_json
from swinfuse_auto.io.image import SUPPORTED_ENDINGS

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")


@dataclass(frozen=True)
class DatasetSpec:
    """What dataset.json says, validated."""

    channel_names: tuple[str, ...]
    labels: dict[str, int]
    num_training: int
    file_ending: str
    raw: dict[str, Any]
    case_channel_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return tuple(modality_of(n) for n in self.channel_names)

    def modalities_for(self, case_id: str) -> tuple[Modality, ...]:
        """Modalities of a case's channels, honouring ``case_channel_names``."""
        names = self.case_channel_names.get(case_id, self.channel_names)
        return tuple(modality_of(n) for n in names)

    @property
    def label_values(self) -> list[int]:
        return sorted(set(self.labels.values()))

    @property
    def num_classes(self) -> int:
        """Number of output classes including background."""
        return max(self.label_values) + 1

    @property
    def foreground_labels(self) -> list[int]:
        return [v for v in self.label_values if v != 0]

    @property
    def ignore_label(self) -> int | None:
        return self.labels.get("ignore")


def parse_dataset_json(data: dict[str, Any], source: Path) -> DatasetSpec:
    """Validate a dataset.json dict; every problem is reported at once, naming the key."""
    problems = [f"missing key '{k}'" for k in REQUIRED_KEYS if k not in data]
    if problems:
        raise DatasetError(f"{source}: {'; '.join(problems)}. Add them as in nnU-Net v2, e.g. "
                           '"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1}, '
                           '"numTraining": 10, "file_ending": ".nii.gz".')
    channels = data["channel_names"]
    if not isinstance(channels, dict) or not channels:
        raise DatasetError(f"{source}: 'channel_names' must be a non-empty object like "
                           '{"0": "CT"}.')
    if not all(str(k).isdigit() for k in channels):
        raise DatasetError(f"{source}: channel_names keys must be channel numbers '0', '1', ..., "
                           f"found {sorted(channels)}.")
    keys = sorted(int(k) for k in channels)
    if keys != list(range(len(keys))):
        raise DatasetError(f"{source}: channel_names keys must be 0..{len(keys) - 1}, found "
                           f"{sorted(channels)}.")
    if not isinstance(data["labels"], dict):
        raise DatasetError(f"{source}: 'labels' must be an object like "
                           '{"background": 0, "liver": 1}.')
    labels: dict[str, int] = {}
    for name, value in data["labels"].items():
        if isinstance(value, list):  # region label: keep the highest member as its class id
            value = max(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DatasetError(f"{source}: label '{name}' must be a non-negative integer, "
                               f"found {value!r}.")
        labels[name] = value
    values = sorted(v for k, v in labels.items() if k != "ignore")
    if 0 not in values:
        raise DatasetError(f"{source}: 'labels' must contain background with value 0.")
    if values != list(range(len(values))):
        raise DatasetError(f"{source}: label values must be consecutive from 0, found {values}. "
                           "Renumber the labels (and the label files) to 0, 1, 2, ...")
    ending = data["file_ending"]
    if ending not in SUPPORTED_ENDINGS:
        raise DatasetError(f"{source}: file_ending '{ending}' is not supported; use one of "
                           f"{', '.join(SUPPORTED_ENDINGS)}.")
    num_training = data["numTraining"]
    if not isinstance(num_training, int) or num_training < 1:
        raise DatasetError(f"{source}: numTraining must be a positive integer, found "
                           f"{num_training!r}.")
    per_case = {}
    if not isinstance(data.get("case_channel_names", {}), dict):
        raise DatasetError(f"{source}: case_channel_names must be an object like "
                           '{"mr_000": {"0": "T1"}}.')
    for case_id, names in data.get("case_channel_names", {}).items():
        if not isinstance(names, dict) or sorted(names) != sorted(str(k) for k in keys):
            raise DatasetError(f"{source}: case_channel_names['{case_id}'] must name the same "
                               f"channels as channel_names ({sorted(channels)}).")
        per_case[case_id] = tuple(str(names[str(k)]) for k in keys)
    return DatasetSpec(tuple(str(channels[str(k)]) for k in keys), labels, num_training,
                       ending, dict(data), per_case)


def load_dataset_spec(raw_dir: Path) -> DatasetSpec:
    """Read and validate ``raw_dir/dataset.json``."""
    return read_dataset_json(Path(raw_dir) / "dataset.json")


def read_dataset_json(path: Path) -> DatasetSpec:
    """Read and validate a dataset.json file given by its own path (whatever its name)."""
    if not path.exists():
        raise DatasetError(f"{path} does not exist. Every dataset folder needs a dataset.json "
                           "(nnU-Net v2 format) naming channels, labels, numTraining, file_ending.")
    try:
        data = read_json(path)
    except Exception as exc:
        raise DatasetError(str(exc)) from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} must contain a JSON object.")
    return parse_dataset_json(data, path)
