"""Untrained tiny models and raw-image writers shared by the prediction tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.untrained import untrained_plan, write_untrained_model
from swinfuse_auto.io.image import Geometry, write_image

#: The cheapest network the plan accepts; prediction logic does not depend on its size.
TINY_ARCH = {"feature_size": 3, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}
PATCH = (32, 32, 64)
TARGET_SPACING = (3.0, 1.5, 1.5)
LABELS = {"background": 0, "liver": 1, "spleen": 2}
OBLIQUE = (0.9553, -0.2955, 0.0, 0.2955, 0.9553, 0.0, 0.0, 0.0, 1.0)  # 0.3 rad about z


def dataset_json(channels: tuple[str, ...] = ("CT",)) -> dict:
    return {"name": "Dataset900_Tiny", "channel_names": {str(i): c for i, c in enumerate(channels)},
            "labels": dict(LABELS), "numTraining": 2, "file_ending": ".nii.gz"}


def make_model(folder: Path, channels: tuple[str, ...] = ("CT",),
               folds: tuple[int | str, ...] = (0, 1)) -> Path:
    data = dataset_json(channels)
    plan = untrained_plan(data, TARGET_SPACING, PATCH, TINY_ARCH)
    return write_untrained_model(folder, plan, data, folds)


def ct_volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """HU-like phantom: air around a noisy body with a bright blob (something to crop)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    body = (y ** 2 + x ** 2) < 0.7
    image = np.where(body, 40.0, -1000.0) + rng.normal(0, 20, shape)
    image[(z ** 2 + (y - 0.2) ** 2 + x ** 2) < 0.1] = 300.0
    image[:, :2] = 0.0  # a zero border, so crop-to-nonzero has something to remove
    return image.astype(np.float32)


def geometry(shape: tuple[int, int, int], spacing_xyz: tuple[float, float, float] = (0.9, 1.1, 2.3),
             direction: tuple[float, ...] = OBLIQUE) -> Geometry:
    return Geometry((shape[2], shape[1], shape[0]), spacing_xyz, (12.5, -30.25, 7.0), direction)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on shared 2-core machines two threads spin against each other and a
    tiny network runs 5x slower; the results do not depend on the thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def volume_factory() -> Callable[..., np.ndarray]:
    """:func:`ct_volume`, for tests (helpers in a conftest are reached through fixtures)."""
    return ct_volume


@pytest.fixture(scope="session")
def grid_factory() -> Callable[..., Geometry]:
    """:func:`geometry`: an oblique, anisotropic grid for a (z, y, x) shape."""
    return geometry


@pytest.fixture(scope="session")
def model_factory() -> Callable[..., Path]:
    """:func:`make_model`."""
    return make_model


@pytest.fixture(scope="session")
def one_channel_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-channel (CT), three-class model with folds 0 and 1."""
    return make_model(tmp_path_factory.mktemp("models") / "untrained__tiny")


@pytest.fixture(scope="session")
def two_channel_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-channel (CT, T1) model with fold 0 only."""
    return make_model(tmp_path_factory.mktemp("models2") / "untrained__tiny", ("CT", "T1"), (0,))


@pytest.fixture
def write_case() -> Callable[..., list[Path]]:
    """Write channel files ``CASE_000c.nii.gz`` of (C, z, y, x) images on one grid."""

    def write(folder: Path, case_id: str, images: np.ndarray, grid: Geometry) -> list[Path]:
        paths = []
        for channel, image in enumerate(images):
            path = Path(folder) / f"{case_id}_{channel:04d}.nii.gz"
            write_image(image, grid, path)
            paths.append(path)
        return paths

    return write
