"""Session-wide fixtures: the synthetic example dataset, generated once and copied on demand."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swinfuse_auto.example_data import generate_example_dataset

EXAMPLE_CT_CASES = 6
EXAMPLE_MR_CASES = 4
EXAMPLE_SHAPE = (32, 48, 48)


@pytest.fixture(scope="session", autouse=True)
def private_calibration_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Inference's CPU precision decision is cached in a folder of the session's own, never in
    the user's ``~/.cache`` (commands started by the tests inherit the variable)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWINFUSE_CACHE", str(tmp_path_factory.mktemp("swinfuse_cache")))
        yield


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


#: A network small enough for CPU tests: a training step takes well under a second.
TINY_FEATURE_SIZE = 6
TINY_PATCH = (32, 32, 64)


@pytest.fixture(scope="session")
def tiny_roots(example_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example dataset planned and preprocessed, with the plan shrunk to a tiny network.

    Returns the roots as keyword arguments of the API (raw, preprocessed, results). Tests that
    train must copy ``results`` if they need a clean one (use :func:`fresh_results`).
    """
    root = tmp_path_factory.mktemp("tiny")
    plan_tiny(example_raw_dir, root / "preprocessed")
    return {"raw": str(example_raw_dir.parent), "preprocessed": str(root / "preprocessed"),
            "results": str(root / "results")}


def plan_tiny(raw_dir: Path, preprocessed: Path) -> None:
    """Plan and preprocess ``raw_dir`` into ``preprocessed``, then shrink the plan to a tiny
    network (feature size 6, patch 32x32x64, batch 2, 4 pre-training steps)."""
    import dataclasses

    from swinfuse_auto.api import plan_and_preprocess
    from swinfuse_auto.paths import PLANS_FILE

    result = plan_and_preprocess(raw_dir, device="cpu", num_processes=1,
                                 preprocessed=str(preprocessed))
    plan = result.plan
    arch = dataclasses.replace(plan.architecture, feature_size=TINY_FEATURE_SIZE)
    pretraining = dataclasses.replace(plan.pretraining, iterations=4, patch_size=TINY_PATCH)
    plan = dataclasses.replace(plan.with_configuration(patch_size=TINY_PATCH, batch_size=2),
                               architecture=arch, pretraining=pretraining)
    plan.save(result.preprocessed_dir / PLANS_FILE)


@pytest.fixture
def fresh_results(tiny_roots: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``tiny_roots`` with an empty results root of the test's own."""
    return {**tiny_roots, "results": str(tmp_path / "results")}


@pytest.fixture(scope="session")
def tiny_planner() -> Callable[[Path, Path], None]:
    """:func:`plan_tiny`, for tests that plan a dataset of their own."""
    return plan_tiny


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], Path]]:
    """A function that makes a folder (created if missing) refuse new files until teardown.

    Tests run as root here and in CI, and root ignores permission bits, so as root the folder is
    made immutable with ``chattr +i`` (undone with ``chattr -i``); otherwise it gets mode 0o555.
    The test is skipped where neither stops a write (chattr on tmpfs, no chattr tool).
    """
    undo: list[Callable[[], object]] = []

    def lock(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            folder.chmod(0o555)
            undo.append(lambda: folder.chmod(0o755))
        elif shutil.which("chattr") and subprocess.run(
                ["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
            undo.append(lambda: subprocess.run(["chattr", "-i", str(folder)], check=True))
        else:
            pytest.skip(f"cannot make {folder} read-only: root, and chattr +i does not work")
        try:
            (folder / ".write_probe").touch()
        except OSError:
            return folder
        (folder / ".write_probe").unlink()
        pytest.skip(f"{folder} still accepts new files after being made read-only")

    yield lock
    for step in reversed(undo):
        step()


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per xdist worker: two workers with torch's default of one thread per
    core (plus their loader processes) on a 2-core machine spin against each other, and a
    training test ran 4x slower than alone."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def _expected_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("slow")
    return float(marker.kwargs.get("seconds", 60)) if marker is not None else 0.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked ``slow`` first, longest first (``slow(seconds=...)``, measured on the
    2-core machine): with ``-n 2`` (``make test``) each worker then starts on a long test while
    the short ones fill the gaps, instead of one worker finishing a seven-minute training alone
    at the end."""
    items.sort(key=lambda item: -_expected_seconds(item))
