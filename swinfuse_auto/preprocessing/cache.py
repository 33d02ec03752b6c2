"""The preprocessed case store: ``CASE.npy`` (C, z, y, x float32), ``CASE_seg.npy``,
``CASE_locations.npz`` (foreground voxels per class, int32) and ``CASE.json`` (properties).
Arrays are memory-mappable so data loaders read only the patch they need; the voxel lists are
kept out of the JSON, where thousands of coordinates would make it larger than the image.

The JSON is written last and carries the digest of the plan that produced the arrays: a case is
finished exactly when its JSON exists with the current digest and its arrays are as large as their
headers say, so an interrupted run redoes only the unfinished case (also one whose array a full
disk or another program cut short) and a changed plan redoes everything.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swinfuse_auto.errors import PreprocessingError
from swinfuse_auto.io.atomic import (atomic_path, read_json, remove_stale_temporaries,
                                     write_json)
from swinfuse_auto.io.output_checks import npy_problem
from swinfuse_auto.preprocessing.case import CaseProperties

LABELLED_FOLDER = "3d_fullres"
UNLABELLED_FOLDER = "3d_fullres_unlabelled"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseStore:
    """A folder of preprocessed cases."""

    folder: Path

    def data_path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}.npy"

    def seg_path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}_seg.npy"

    def locations_path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}_locations.npz"

    def properties_path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}.json"

    def is_complete(self, case_id: str, digest: str, labelled: bool) -> bool:
        """Whether the case was finished with the plan of ``digest`` and its arrays are whole."""
        path = self.properties_path(case_id)
        try:
            if json.loads(path.read_text()).get("plan_digest") != digest:
                return False
        except (json.JSONDecodeError, OSError):
            return False
        arrays = [self.data_path(case_id)] + ([self.seg_path(case_id)] if labelled else [])
        return all(self._is_whole(array) for array in arrays)

    @staticmethod
    def _is_whole(array: Path) -> bool:
        if not array.exists():
            return False
        problem = npy_problem(array)
        if problem is not None:
            logger.warning("%s is damaged (%s); preprocessing the case again", array, problem)
        return problem is None

    def write(self, properties: CaseProperties, data: np.ndarray, seg: np.ndarray | None,
              digest: str) -> None:
        """Write arrays first and the properties JSON last, each through a temporary name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.data_path(properties.case_id)) as tmp:
            np.save(tmp, data.astype(np.float32, copy=False))
        if seg is not None:
            dtype = np.int8 if seg.min() >= -128 and seg.max() < 128 else np.int16
            with atomic_path(self.seg_path(properties.case_id)) as tmp:
                np.save(tmp, seg.astype(dtype))
        if properties.class_locations:
            with atomic_path(self.locations_path(properties.case_id)) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **{f"class_{k}": np.asarray(v, dtype=np.int32).reshape(-1, 3)
                                        for k, v in properties.class_locations.items()})
        record = properties.to_dict()
        record.pop("class_locations")
        write_json(self.properties_path(properties.case_id), {**record, "plan_digest": digest})

    def case_ids(self) -> list[str]:
        """Finished cases (those with a properties file)."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if not p.name.startswith("."))

    def load(self, case_id: str, mmap: bool = True
             ) -> tuple[np.ndarray, np.ndarray | None, CaseProperties]:
        """Arrays (memory-mapped by default) and properties of one case."""
        path = self.properties_path(case_id)
        if not path.exists():
            raise PreprocessingError(f"{path} is missing: case {case_id} was not preprocessed. "
                                     "Run plan_and_preprocess for this dataset.")
        properties = CaseProperties.from_dict(read_json(path))
        locations = self.locations_path(case_id)
        if locations.exists():
            with np.load(locations) as stored:
                properties.class_locations.update(
                    {int(k.split("_")[1]): stored[k] for k in stored.files})
        mode = "r" if mmap else None
        data = np.load(self.data_path(case_id), mmap_mode=mode)
        seg_path = self.seg_path(case_id)
        seg = np.load(seg_path, mmap_mode=mode) if seg_path.exists() else None
        return data, seg, properties

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files an interrupted run left behind; returns how many."""
        return remove_stale_temporaries(self.folder)
