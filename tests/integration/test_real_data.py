"""Every real dataset of ``../shared/data`` through every stage with the defaults.

The same as ``../shared/tools/real_data_smoke.sh``: plan_and_preprocess --verify, pretrain,
train_fold all (--pretrain auto), predict and evaluate, with tiny training budgets; the suite
predicts one case per dataset (a 512 x 512 chest CT alone takes minutes on 2 cores), the script
every case. Real scans
bring what the phantoms do not (non-square fields of view, 6.5 mm slices, 512x512 CT, a
single case, an unlabelled MR of another scanner in imagesTs). Skipped when the folder is absent,
as in a user's fresh clone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from every_stage import run_every_stage

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow(seconds=120)]

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DATASETS = sorted(p.name for p in SHARED_DATA.glob("Dataset*_*") if (p / "dataset.json").exists())


@pytest.mark.skipif(not DATASETS, reason=f"no real datasets in {SHARED_DATA}")
@pytest.mark.parametrize("name", DATASETS or ["none"])
def test_real_dataset_goes_through_every_stage(name: str, tmp_path: Path) -> None:
    seconds = run_every_stage(SHARED_DATA / name, tmp_path, predict_cases=1)
    assert (tmp_path / "predictions" / "summary.json").exists()
    print(name, {k: round(v, 1) for k, v in seconds.items()})
