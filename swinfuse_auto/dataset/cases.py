"""Finding the cases of a raw folder: ``CASE_XXXX<ending>`` channel files plus ``CASE<ending>`` labels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from swinfuse_auto.dataset.spec import DatasetSpec


@dataclass(frozen=True)
class Case:
    """One case: a channel file per channel (None where missing) and an optional label file."""

    case_id: str
    images: tuple[Path | None, ...]
    label: Path | None = None

    @property
    def missing_channels(self) -> list[int]:
        return [i for i, p in enumerate(self.images) if p is None]

    def channel_path(self, channel: int) -> Path:
        path = self.images[channel]
        if path is None:
            raise FileNotFoundError(f"case {self.case_id} has no channel {channel:04d} file")
        return path


def _channel_files(folder: Path, ending: str) -> dict[str, dict[int, Path]]:
    pattern = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})" + re.escape(ending) + "$")
    found: dict[str, dict[int, Path]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.name)
        if match and not path.name.startswith("."):
            found.setdefault(match["case"], {})[int(match["ch"])] = path
    return found


def find_cases(image_dir: Path, spec: DatasetSpec, label_dir: Path | None = None) -> list[Case]:
    """All cases in ``image_dir`` sorted by id; labels looked up in ``label_dir`` when given.

    A case with a label file but no image file is still listed (with every channel missing) so
    verification can report it instead of silently dropping it.
    """
    channels = _channel_files(Path(image_dir), spec.file_ending)
    label_ids: set[str] = set()
    if label_dir is not None and Path(label_dir).is_dir():
        label_ids = {p.name[: -len(spec.file_ending)] for p in Path(label_dir).iterdir()
                     if p.name.endswith(spec.file_ending) and not p.name.startswith(".")}
    cases = []
    for case_id in sorted(set(channels) | label_ids):
        files = channels.get(case_id, {})
        images = tuple(files.get(c) for c in range(spec.num_channels))
        label = None
        if label_dir is not None and case_id in label_ids:
            label = Path(label_dir) / f"{case_id}{spec.file_ending}"
        cases.append(Case(case_id, images, label))
    return cases


def training_cases(raw_dir: Path, spec: DatasetSpec) -> list[Case]:
    return find_cases(Path(raw_dir) / "imagesTr", spec, Path(raw_dir) / "labelsTr")


def held_out_cases(raw_dir: Path, spec: DatasetSpec) -> list[Case]:
    """Cases of imagesTs (labels from labelsTs when that folder exists)."""
    label_dir = Path(raw_dir) / "labelsTs"
    return find_cases(Path(raw_dir) / "imagesTs", spec, label_dir if label_dir.is_dir() else None)
