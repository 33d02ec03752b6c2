"""Self-training on the dataset's unlabelled images of another modality.

Labels usually exist in one modality; the dataset often holds unlabelled images of another one
(MR in imagesTs of a CT dataset). After most of the fine-tuning steps, the model predicts those
images; voxels it is confident about become pseudo-labels, the rest are ignored by the loss, and
the remaining steps train on labelled and pseudo-labelled cases together, with the same
augmentation. The model thereby sees the other modality's real appearance (noise, bias field,
contrast) with its own best guess of the anatomy, which is how unsupervised adaptation methods
(e.g. SIFA) close most of the gap that augmentation alone leaves.

Pseudo-labels are cleaned before use: a voxel below the confidence threshold is ignored, and
only the largest connected component of each class is kept (organs are single connected blobs;
scattered false positives on the other modality are the typical error). A model that has not
learnt to see an organ on the other modality labels it background, confidently: trained on,
that would teach "no organ here". So background is trusted only in a case where every organ was
found at a plausible size (at least :data:`MIN_SHARE_OF_EXPECTED` of its share of the labelled
cases' voxels); elsewhere only the confident organ voxels are used. They are written to
``fold_X/pseudo_labels`` with a marker written last, so a resumed run reuses them instead of
predicting again, and a run killed while writing them predicts them again from the same weights.
"""

from __future__ import annotations

import logging
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from swinfuse_auto.io.atomic import atomic_path, read_json, write_json
from swinfuse_auto.preprocessing.cache import CaseStore
from swinfuse_auto.preprocessing.case import CaseProperties, sample_class_locations

logger = logging.getLogger(__name__)

PSEUDO_FOLDER = "pseudo_labels"
#: Label of voxels the loss ignores (below the confidence threshold).
IGNORE_LABEL = -1
_DONE_FILE = "pseudo_labels.json"
#: An organ counts as found when its pseudo-label holds at least this share of the organ's
#: voxel share in the labelled cases (the other modality's field of view may differ).
MIN_SHARE_OF_EXPECTED = 0.25
_PREFIX = "pseudo:"


def other_modality_cases(store: CaseStore, training_modalities: tuple[str, ...]) -> list[str]:
    """Finished cases of ``store`` with as many channels as the training cases but other
    modalities (an MR image in imagesTs of a CT dataset); same-modality test images are left
    for ``predict``."""
    chosen = []
    for case_id in store.case_ids():
        _, _, properties = store.load(case_id)
        if (len(properties.modalities) == len(training_modalities)
                and tuple(properties.modalities) != tuple(training_modalities)):
            chosen.append(case_id)
    return chosen


def clean_pseudo_label(probabilities: np.ndarray, confidence: float,
                       expected_shares: np.ndarray | None = None) -> np.ndarray:
    """int8 labels from (K, z, y, x) probabilities: the arg-max where its probability reaches
    ``confidence``, :data:`IGNORE_LABEL` elsewhere, and for each foreground class only its
    largest connected component (other blobs of that class become ignored). With
    ``expected_shares`` (K voxel shares of the labelled cases), background is ignored too when
    an organ is missing or far too small (module notes)."""
    labels = probabilities.argmax(0).astype(np.int8)
    labels[probabilities.max(0) < confidence] = IGNORE_LABEL
    for value in range(1, probabilities.shape[0]):
        components, count = ndimage.label(labels == value)
        if count > 1:
            sizes = np.bincount(components.ravel())[1:]
            labels[(components > 0) & (components != 1 + int(np.argmax(sizes)))] = IGNORE_LABEL
    if expected_shares is not None and missing_classes(labels, expected_shares):
        labels[labels == 0] = IGNORE_LABEL
    return labels


def missing_classes(labels: np.ndarray, expected_shares: np.ndarray) -> list[int]:
    """Foreground classes whose share of ``labels`` is below MIN_SHARE_OF_EXPECTED of the
    expected one."""
    shares = np.bincount(labels[labels >= 0].ravel(), minlength=len(expected_shares)) / labels.size
    return [k for k in range(1, len(expected_shares))
            if shares[k] < MIN_SHARE_OF_EXPECTED * expected_shares[k]]


def class_shares(store: Any, case_ids: list[str], num_classes: int) -> np.ndarray:
    """Each class's share of the voxels of the labelled cases ``case_ids``."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for case_id in case_ids:
        seg = store.load(case_id)[1]
        counts += np.bincount(np.asarray(seg).ravel().clip(0), minlength=num_classes)[:num_classes]
    return counts / max(1, counts.sum())


@dataclass(frozen=True)
class PseudoLabelStore:
    """Unlabelled images with pseudo-labels, read like a :class:`CaseStore` by the batches.

    Case ids carry a ``pseudo:`` prefix so they never collide with labelled case ids.
    """

    images: CaseStore
    folder: Path

    @staticmethod
    def key(case_id: str) -> str:
        return f"{_PREFIX}{case_id}"

    def seg_path(self, key: str) -> Path:
        return self.folder / f"{key.removeprefix(_PREFIX)}_seg.npy"

    def is_complete(self) -> bool:
        return (self.folder / _DONE_FILE).exists()

    def case_keys(self) -> list[str]:
        return [self.key(c) for c in read_json(self.folder / _DONE_FILE)["cases"]]

    def load(self, key: str, mmap: bool = True
             ) -> tuple[np.ndarray, np.ndarray | None, CaseProperties]:
        case_id = key.removeprefix(_PREFIX)
        data, _, properties = self.images.load(case_id, mmap)
        with np.load(self.folder / f"{case_id}_locations.npz") as stored:
            locations = {int(k.split("_")[1]): stored[k] for k in stored.files}
        seg = np.load(self.seg_path(key), mmap_mode="r" if mmap else None)
        return data, seg, replace(properties, class_locations=locations)


def write_pseudo_labels(predict: Any, images: CaseStore, case_ids: list[str], folder: Path,
                        confidence: float, expected_shares: np.ndarray) -> PseudoLabelStore:
    """Predict ``case_ids`` of ``images`` with ``predict`` (volume -> (K, z, y, x) probabilities)
    and write the cleaned pseudo-labels; returns their store. An earlier, unfinished set is
    discarded first."""
    num_classes = len(expected_shares)
    store = PseudoLabelStore(images, Path(folder))
    if store.folder.exists():
        shutil.rmtree(store.folder)
    store.folder.mkdir(parents=True)
    summary: dict[str, Any] = {"confidence": confidence, "cases": {}}
    for case_id in case_ids:
        data, _, _ = images.load(case_id)
        probabilities = predict(np.array(data, dtype=np.float32)).cpu().numpy()
        labels = clean_pseudo_label(probabilities, confidence, expected_shares)
        with atomic_path(store.seg_path(store.key(case_id))) as tmp:
            np.save(tmp, labels)
        locations = sample_class_locations(labels, list(range(1, num_classes)),
                                           seed=zlib.crc32(case_id.encode()))
        with atomic_path(store.folder / f"{case_id}_locations.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **{f"class_{k}": v for k, v in locations.items() if len(v)})
        record = {"kept_fraction": float(np.mean(labels != IGNORE_LABEL)),
                  "voxels_per_class": np.bincount(labels[labels >= 0].ravel(),
                                                  minlength=num_classes).tolist(),
                  "background_used": bool((labels == 0).any())}
        summary["cases"][case_id] = record
        logger.info("pseudo-label %s: %.0f%% of voxels kept, voxels per class %s%s", case_id,
                    100 * record["kept_fraction"], record["voxels_per_class"],
                    "" if record["background_used"] else " (an organ missing: background ignored)")
    write_json(store.folder / _DONE_FILE, summary)
    return store


class CombinedStore:
    """Several stores read as one by :class:`SegmentationBatches`, each case by its own store."""

    def __init__(self, parts: list[tuple[Any, list[str]]]) -> None:
        self.folder = parts[0][0].folder
        self._by_case = {case: store for store, cases in parts for case in cases}

    def load(self, case_id: str, mmap: bool = True) -> tuple[Any, ...]:
        return self._by_case[case_id].load(case_id, mmap)

    def seg_path(self, case_id: str) -> Path:
        return self._by_case[case_id].seg_path(case_id)


@dataclass(frozen=True)
class SelfTrainingSchedule:
    """When and on what a fine-tuning run self-trains (see the module notes).

    Attributes:
        images: the store of the unlabelled images.
        cases: the unlabelled cases of another modality to pseudo-label.
        folder: where the pseudo-labels go (``fold_X/pseudo_labels``).
        switch_epoch: first epoch that trains on pseudo-labels too.
        confidence: softmax probability below which a voxel is ignored.
    """

    images: CaseStore
    cases: list[str]
    folder: Path
    switch_epoch: int
    confidence: float

    def pseudo_labels(self, predict: Any, expected_shares: Callable[[], np.ndarray],
                      context: Any) -> PseudoLabelStore:
        """The finished pseudo-labels; made now (on the main rank) unless a finished set exists.

        ``expected_shares``: each class's share of the labelled training cases' voxels, called
        only when the labels are made (it reads every training label; a resumed run and the
        other ranks skip that).
        """
        store = PseudoLabelStore(self.images, self.folder)
        if context.is_main and not store.is_complete():
            logger.info("self-training: pseudo-labelling %d image(s) of another modality",
                        len(self.cases))
            write_pseudo_labels(predict, self.images, self.cases, self.folder, self.confidence,
                                expected_shares())
        context.barrier()
        return store


def plan_self_training(choice: str, fraction: float, confidence: float, epochs: int,
                       images: CaseStore | None, training_modalities: tuple[str, ...],
                       folder: Path) -> SelfTrainingSchedule | None:
    """The schedule for ``choice`` ("auto", "on", "off"), or None when the run does not
    self-train. "auto" self-trains exactly when the dataset holds unlabelled images of another
    modality; "on" without such images is an error.

    Raises:
        ConfigError: "on" without other-modality images, or a budget too short to switch.
    """
    from swinfuse_auto.errors import ConfigError

    if choice == "off" or fraction <= 0:
        return None
    cases = other_modality_cases(images, training_modalities) if images is not None else []
    switch = epochs - max(1, round(fraction * epochs))
    problem = ("the unlabelled images (imagesTs) hold no image of another modality than the "
               "training channels" if not cases else
               f"{epochs} epoch(s) leave no epoch before the switch" if switch < 1 else None)
    if problem is not None:
        if choice == "on":
            raise ConfigError(f"self_training=on, but {problem}. Add such images to imagesTs "
                              "(tagged in case_channel_names), train longer, or set "
                              "self_training=off.")
        return None
    logger.info("self-training from epoch %d of %d on %d unlabelled image(s) of another modality",
                switch, epochs, len(cases))
    return SelfTrainingSchedule(images, cases, Path(folder), switch, confidence)  # type: ignore[arg-type]
