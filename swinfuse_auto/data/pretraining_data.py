"""Single-channel crops for self-supervised pre-training, mixing CT and MR in every batch.

Every channel of every preprocessed image (training cases, imagesTs cases, extra unlabelled
folders) is one pool entry tagged with its modality. Every batch holds at least one crop of each
modality of the pool, because the density-matching loss compares the CT and MR embeddings
*within* a batch and cannot be computed from a batch of one modality, and at least two crops,
because contrastive coding needs another crop as a negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from swinfuse_auto.data.cropping import crop_padded, random_crop_start
from swinfuse_auto.dataset.modality import MODALITY_INDEX, Modality
from swinfuse_auto.errors import ConfigError, PreprocessingError
from swinfuse_auto.preprocessing.cache import CaseStore

#: Contrastive coding contrasts each crop with the others of its batch.
MIN_PRETRAINING_BATCH = 2


def minimum_batch_size(modalities: list[str]) -> int:
    """The smallest batch that holds every modality and gives NT-Xent a negative."""
    return max(MIN_PRETRAINING_BATCH, len(set(modalities)))

@dataclass(frozen=True)
class PoolEntry:
    """One single-channel image of the pre-training pool."""

    store: CaseStore
    case_id: str
    channel: int
    modality: str


def build_pool(stores: list[CaseStore]) -> list[PoolEntry]:
    """Every channel of every finished case in ``stores``."""
    pool = []
    for store in stores:
        for case_id in store.case_ids():
            _, _, properties = store.load(case_id)
            for channel, modality in enumerate(properties.modalities):
                pool.append(PoolEntry(store, case_id, channel, modality))
    if not pool:
        raise PreprocessingError("No preprocessed images found for pre-training in "
                                 f"{[str(s.folder) for s in stores]}. Run plan_and_preprocess.")
    return pool


class PretrainingBatches:
    """Callable ``rng -> batch`` for :func:`swinfuse_auto.data.step_loader.step_batches`.

    A batch is {"image": (B, 1, *patch) float32, "modality": (B,) int64, "view_seed": int}.

    Raises:
        ConfigError: ``batch_size`` below :func:`minimum_batch_size` of the pool's modalities.
    """

    def __init__(self, pool: list[PoolEntry], patch_size: tuple[int, int, int],
                 batch_size: int) -> None:
        self.pool = pool
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.by_modality: dict[str, list[int]] = {}
        for index, entry in enumerate(pool):
            self.by_modality.setdefault(entry.modality, []).append(index)
        if batch_size < minimum_batch_size(self.modalities):
            raise ConfigError(f"A pre-training batch of {batch_size} crop(s) cannot hold two crops "
                              f"and every modality of the pool ({', '.join(self.modalities)}); "
                              f"use at least {minimum_batch_size(self.modalities)}.")

    @property
    def modalities(self) -> list[str]:
        return sorted(self.by_modality)

    def _choose(self, rng: np.random.Generator) -> list[int]:
        groups = [self.by_modality[m] for m in self.modalities]
        # round-robin over modalities, starting at a random one, so each gets an equal share
        offset = int(rng.integers(len(groups)))
        return [int(rng.choice(groups[(offset + i) % len(groups)]))
                for i in range(self.batch_size)]

    def _crop(self, entry: PoolEntry, rng: np.random.Generator) -> np.ndarray:
        data, _, _ = entry.store.load(entry.case_id)
        image = data[entry.channel]
        start = random_crop_start(image.shape, self.patch_size, rng)
        return crop_padded(image, start, self.patch_size, fill=float(image.min()))

    def __call__(self, rng: np.random.Generator) -> dict[str, torch.Tensor | int]:
        indices = self._choose(rng)
        crops = np.stack([self._crop(self.pool[i], rng) for i in indices])[:, None]
        modality = [MODALITY_INDEX[Modality(self.pool[i].modality)] for i in indices]
        return {"image": torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32)),
                "modality": torch.tensor(modality, dtype=torch.int64),
                "view_seed": int(rng.integers(2**31))}
