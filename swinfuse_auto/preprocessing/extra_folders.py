"""Unlabelled folders added to pre-training (``pretrain --extra DIR MODALITY``).

Each image file in the folder is one single-channel image of the given modality; it is prepared
with that modality's normalisation from the plan and cached beside the dataset's own cases, so a
second pre-training run does not redo it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from swinfuse_auto.dataset.cases import Case
from swinfuse_auto.errors import DatasetError
from swinfuse_auto.io.image import SUPPORTED_ENDINGS
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.preprocessing.runner import preprocess_cases
from swinfuse_auto.progress import Progress


def _case_id(path: Path) -> str:
    name = path.name
    for ending in SUPPORTED_ENDINGS:
        if name.endswith(ending):
            return name[: -len(ending)]
    return path.stem


def extra_store(directory: Path, modality: str, preprocessed_dir: Path) -> CaseStore:
    """The cache folder of one extra folder (named after it, plus a hash of its full path)."""
    tag = hashlib.sha256(str(Path(directory).resolve()).encode()).hexdigest()[:8]
    return CaseStore(Path(preprocessed_dir) / f"extra_{modality}_{Path(directory).name}_{tag}")


def preprocess_extra_folder(directory: Path, modality: str, plan: Plan, preprocessed_dir: Path,
                            num_processes: int = 1, progress: Progress | None = None
                            ) -> CaseStore:
    """Preprocess every image of ``directory`` as ``modality``; returns its case store."""
    files = sorted(p for p in Path(directory).iterdir()
                   if not p.name.startswith(".") and p.name.endswith(SUPPORTED_ENDINGS))
    if not files:
        raise DatasetError(f"--extra {directory}: no images ({', '.join(SUPPORTED_ENDINGS)}) "
                           "found in the folder.")
    store = extra_store(directory, modality, preprocessed_dir)
    cases = [(Case(_case_id(f), (f,)), (modality,)) for f in files]
    preprocess_cases(cases, plan, store, [plan.pretraining.modality_normalization[modality]],
                     num_processes, progress)
    return store
