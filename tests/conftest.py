"""Session-wide fixtures: the synthetic example dataset, generated once and copied on demand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from swinfuse_auto.example_data import generate_example_dataset

EXAMPLE_CT_CASES = 6
EXAMPLE_MR_CASES = 4
EXAMPLE_SHAPE = (32, 48, 48)


@pytest.fixture(scope="session")
def example_raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default example dataset (6 CT + 4 MR cases, seed 0); treat it as read-only.

    Generated once per session because every stage's tests start from it; tests that damage
    files must use :func:`example_copy` instead.
    """
    root = tmp_path_factory.mktemp("example_raw")
    return generate_example_dataset(root, ct_cases=EXAMPLE_CT_CASES, mr_cases=EXAMPLE_MR_CASES,
                                    shape=EXAMPLE_SHAPE, seed=0)


@pytest.fixture
def example_copy(example_raw_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the example dataset, free to be broken by the test."""
    return Path(shutil.copytree(example_raw_dir, tmp_path / example_raw_dir.name))
