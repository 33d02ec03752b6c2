from __future__ import annotations

import json
from pathlib import Path

import pytest

from swinfuse_auto.api import plan_dataset
from swinfuse_auto.errors import PlanError
from swinfuse_auto.plans.migrations import migrate
from swinfuse_auto.plans.schema import SCHEMA_VERSION, Plan


@pytest.fixture(scope="module")
def plan_dict(example_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("plans")
    return plan_dataset(example_raw_dir, device="cpu", preprocessed=str(out)).plan.to_dict()


def test_plan_survives_json_objects_json_unchanged(plan_dict: dict) -> None:
    text = json.dumps(plan_dict, sort_keys=True)
    again = Plan.from_dict(json.loads(text)).to_dict()
    assert json.dumps(again, sort_keys=True) == text


@pytest.mark.parametrize("path,value,message", [
    (("configuration", "patch_size"), [48, 64, 64], "configuration.patch_size"),
    (("configuration", "patch_size"), [32, 32, 32],
     "configuration.patch_size: Input size (32, 32, 32) leaves a single voxel"),
    (("configuration", "batch_size"), "2", "configuration.batch_size: expected an integer"),
    (("configuration", "normalization", 0, "scheme"), "zscroe", "unknown scheme 'zscroe'"),
    (("architecture", "feature_size"), 0, "feature_size"),
    (("target", "kind_of"), "x", "target.kind_of: unknown key. Did you mean 'kind'?"),
    (("architecture", "patch_size"), 2, "architecture.patch_size: unknown key. Did you mean "
                                        "'patch_embed_stride'?"),
])
def test_invalid_plans_name_the_json_path(plan_dict: dict, path: tuple, value: object,
                                          message: str) -> None:
    data = json.loads(json.dumps(plan_dict))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(PlanError) as info:
        Plan.from_dict(data)
    assert message in str(info.value)


def test_missing_key_and_future_version_are_explained(plan_dict: dict) -> None:
    data = json.loads(json.dumps(plan_dict))
    del data["configuration"]["spacing"]
    with pytest.raises(PlanError, match="configuration.spacing: missing required key"):
        Plan.from_dict(data)
    with pytest.raises(PlanError, match="newer than this swinfuse_auto"):
        migrate({**plan_dict, "schema_version": 99})


def test_digest_changes_with_preprocessing_decisions_only(plan_dict: dict) -> None:
    plan = Plan.from_dict(plan_dict)
    assert plan.with_configuration(batch_size=7).digest() == plan.digest()
    assert plan.with_configuration(spacing=(1.0, 1.0, 1.0)).digest() != plan.digest()


STORED_V1_PLAN = Path(__file__).parent / "data" / "plans_v1_nonsquare.json"


def test_schema_1_plan_migrates_to_a_rotatable_pretraining_crop() -> None:
    """A plan written before the pre-training crop had its own key, with the non-square patch of
    a real abdominal CT (32x96x128) and batch 1, which pre-training refused, now loads with a
    crop that 90-degree rotations keep and a batch that gives contrastive coding a negative."""
    stored = json.loads(STORED_V1_PLAN.read_text())
    assert stored["schema_version"] == 1 and "patch_size" not in stored["pretraining"]
    plan = Plan.from_dict(stored)
    assert plan.configuration.patch_size == (32, 96, 128)
    assert plan.pretraining.patch_size == (32, 96, 96)
    assert plan.pretraining.batch_size == 2
    assert plan.to_dict()["schema_version"] == SCHEMA_VERSION
    assert plan.architecture.patch_embed_stride == 2  # through 2 -> 3 as well


def test_pretraining_crop_without_rotation_plane_is_explained(plan_dict: dict) -> None:
    data = json.loads(json.dumps(plan_dict))
    data["pretraining"]["patch_size"] = [32, 64, 96]
    with pytest.raises(PlanError, match=r"pretraining.patch_size: \[32, 64, 96\] has no plane"):
        Plan.from_dict(data)
    data["pretraining"]["patch_size"] = [32, 64, 64]
    data["pretraining"]["batch_size"] = 1
    with pytest.raises(PlanError, match="pretraining.batch_size: must be at least 2"):
        Plan.from_dict(data)


STORED_V2_PLAN = Path(__file__).parent / "data" / "plans_v2_example.json"
#: The optimisation values a schema-2 plan held in its pre-training block (issue 13).
MOVED = ("learning_rate", "weight_decay", "warmup_iterations", "density_matching_weight",
         "contrastive_temperature")


def test_schema_2_plan_migrates_to_3() -> None:
    """A plan as the default planner wrote it before schema 3 (the example data on a CPU): the
    architecture's patch_size is the patch-embedding stride, and the pre-training block held
    the optimisation, which now belongs to the recipe's config."""
    stored = json.loads(STORED_V2_PLAN.read_text())
    assert stored["schema_version"] == 2 and stored["architecture"]["patch_size"] == 2
    assert set(MOVED) <= set(stored["pretraining"])
    plan = Plan.from_dict(stored)
    data = plan.to_dict()
    assert data["schema_version"] == SCHEMA_VERSION == 3
    assert plan.architecture.patch_embed_stride == 2 and "patch_size" not in data["architecture"]
    assert not set(MOVED) & set(data["pretraining"])
    assert set(data["pretraining"]) == {"iterations", "batch_size", "patch_size",
                                        "modality_normalization"}
    assert (plan.pretraining.iterations, plan.pretraining.batch_size,
            plan.pretraining.patch_size) == (404, 2, (32, 64, 32))
    assert plan.digest() == Plan.from_dict(data).digest()  # the cache stays valid
    kept = {k: v for k, v in stored.items() if k not in ("schema_version", "architecture",
                                                          "pretraining")}
    assert {k: data[k] for k in kept} == kept


def test_a_changed_schema_2_optimisation_value_is_reported_with_its_set(
        caplog: pytest.LogCaptureFixture) -> None:
    stored = json.loads(STORED_V2_PLAN.read_text())
    stored["pretraining"]["learning_rate"] = 0.001
    stored["pretraining"]["warmup_iterations"] = 7
    with caplog.at_level("WARNING", logger="swinfuse_auto.plans.migrations"):
        Plan.from_dict(stored)
    text = caplog.text
    assert "pretrain --set learning_rate=0.001" in text
    assert "pretrain --set max_warmup_iterations=7" in text
    assert "weight_decay" not in text  # the planner's own values need no word


def test_the_architecture_names_its_stride_not_a_patch(plan_dict: dict) -> None:
    assert plan_dict["architecture"]["patch_embed_stride"] == 2
    assert "patch_size" not in plan_dict["architecture"]
