"""Planner decisions on the example data and on the real volumes of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from swinfuse_auto.api import plan_dataset
from swinfuse_auto.errors import PlanError
from swinfuse_auto.example_data import generate_example_dataset
from swinfuse_auto.paths import PLANS_FILE
from swinfuse_auto.plans.schema import Plan
from swinfuse_auto.registry import PLANNERS

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _check_common(plan: Plan) -> None:
    config = plan.configuration
    assert all(p % 32 == 0 for p in config.patch_size)
    assert any(p > 32 for p in config.patch_size)  # 1/32 bottleneck of more than one voxel
    assert config.batch_size >= 1
    assert Plan.from_dict(plan.to_dict()) == plan
    assert set(plan.reasons) >= {"spacing", "patch_size", "normalization", "folds"}


@pytest.mark.parametrize("planner", PLANNERS.names())
def test_every_planner_gives_a_valid_plan_for_the_example_data(
        planner: str, example_raw_dir: Path, tmp_path: Path) -> None:
    outcome = plan_dataset(example_raw_dir, planner=planner, device="cpu",
                           preprocessed=str(tmp_path), num_processes=1)
    plan = outcome.plan
    _check_common(plan)
    assert plan.configuration.normalization[0].scheme == "ct"
    assert plan.pretraining.modality_normalization["MR"].scheme == "zscore"
    assert plan.num_folds == min(5, len(outcome.fingerprint.cases))
    assert plan.target.kind == "cpu" and plan.architecture.feature_size <= 24
    assert plan.pretraining.batch_size >= 2  # CT + MR mixed in each batch
    # the measured-best recipe, with the unlabelled MR named in the reason
    assert plan.finetuning_preset == "modality_independent"
    assert "MR" in plan.reasons["finetuning_preset"]
    assert (tmp_path / example_raw_dir.name / PLANS_FILE).exists()


def test_gpu_budget_grows_the_patch_and_network(example_raw_dir: Path, tmp_path: Path) -> None:
    small = plan_dataset(example_raw_dir, device="cpu", preprocessed=str(tmp_path / "a")).plan
    big = plan_dataset(example_raw_dir, gpu_memory_gb=40, preprocessed=str(tmp_path / "b")).plan
    assert big.architecture.feature_size == 48
    assert big.target.kind == "cuda" and big.configuration.batch_size >= 2
    small_voxels = small.configuration.patch_size[0] * small.configuration.patch_size[1]
    assert big.configuration.patch_size[0] * big.configuration.patch_size[1] >= small_voxels


def test_hand_edited_plan_is_kept_and_broken_plan_is_explained(
        example_raw_dir: Path, tmp_path: Path) -> None:
    outcome = plan_dataset(example_raw_dir, device="cpu", preprocessed=str(tmp_path))
    path = outcome.preprocessed_dir / PLANS_FILE
    edited = outcome.plan.with_configuration(batch_size=3)
    edited.save(path)
    again = plan_dataset(example_raw_dir, device="cpu", preprocessed=str(tmp_path))
    assert again.plan_reused and again.plan.configuration.batch_size == 3
    text = path.read_text().replace('"patch_size": [\n      ', '"patch_size": [\n      48, ', 1)
    path.write_text(text)
    with pytest.raises(PlanError, match="configuration.patch_size"):
        Plan.load(path)


SHARED_EXPECTATIONS = {
    # name: (scheme of channel 0, folds, anisotropic axis expected to stay coarse)
    "Dataset901_RadiomicsMR": ("zscore", 2, True),
    "Dataset902_RadiomicsLungCT": ("ct", 2, True),
    "Dataset903_BrainTissueMR": ("zscore", 0, False),
    "Dataset904_CraniumCT": ("ct", 0, False),
}


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not available")
@pytest.mark.parametrize("name", sorted(SHARED_EXPECTATIONS))
def test_planner_on_real_volumes(name: str, tmp_path: Path) -> None:
    scheme, folds, anisotropic = SHARED_EXPECTATIONS[name]
    outcome = plan_dataset(SHARED / name, device="cpu", preprocessed=str(tmp_path))
    plan = outcome.plan
    _check_common(plan)
    assert plan.configuration.normalization[0].scheme == scheme
    assert plan.num_folds == folds
    spacing = plan.configuration.spacing
    if anisotropic:
        assert spacing[0] > 3 * spacing[1]  # thick slices are not interpolated 5x
    else:
        assert max(spacing) / min(spacing) < 3


def test_intensities_are_kept_where_no_other_modality_waits(tmp_path: Path) -> None:
    """CT only (no MR in imagesTs): nothing to generalise to, so the intensity preset."""
    raw = generate_example_dataset(tmp_path / "raw", ct_cases=3, mr_cases=0,
                                   shape=(32, 48, 48), seed=0)
    plan = plan_dataset(raw, device="cpu", preprocessed=str(tmp_path / "pre"),
                        num_processes=1).plan
    assert plan.finetuning_preset == "nnunet_intensity"
    assert "every image has a labelled modality" in plan.reasons["finetuning_preset"]
