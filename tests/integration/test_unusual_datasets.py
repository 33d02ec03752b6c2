"""Generated datasets with the shapes that break naive planners, through every stage.

* a non-square in-plane field of view (122x101 voxels, 30 slices of 3 mm) with an MR case in
  imagesTs: the shape of the real abdominal CT whose 32x96x128 patch could not be pre-trained on
  (90-degree rotations need two equal axes); its cases include an oblique and a flipped grid;
* a single case with strongly anisotropic spacing (6 mm slices, 0.7 mm in-plane), fewer slices
  than the patch is deep, so only fold 'all' exists;
* two channels on volumes smaller than the patch along every axis.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from every_stage import run_every_stage
from swinfuse_auto.example_data import generate_example_dataset
from swinfuse_auto.io.atomic import read_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _add_second_channel(raw: Path) -> None:
    """Channel 1: an inverted copy of channel 0, named T2, so the dataset has two channels."""
    for path in sorted((raw / "imagesTr").glob("*_0000.nii.gz")):
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        second = sitk.GetImageFromArray(array.max() - array)
        second.CopyInformation(image)
        sitk.WriteImage(second, str(path).replace("_0000.nii.gz", "_0001.nii.gz"))
    data = json.loads((raw / "dataset.json").read_text())
    data["channel_names"] = {"0": "CT", "1": "T2"}
    (raw / "dataset.json").write_text(json.dumps(data))


DATASETS: dict[str, tuple[dict, Callable[[Path], None] | None]] = {
    "Dataset801_NonSquareFov": (dict(ct_cases=3, mr_cases=1, shape=(30, 101, 122),
                                     spacing=(3.0, 3.0, 3.0)), None),
    "Dataset802_SingleThickSlices": (dict(ct_cases=1, mr_cases=0, shape=(12, 128, 128),
                                          spacing=(6.0, 0.7, 0.7)), None),
    "Dataset803_TwoChannelsSmall": (dict(ct_cases=2, mr_cases=0, shape=(16, 24, 28)),
                                    _add_second_channel),
}


@pytest.mark.slow(seconds=60)
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_awkward_dataset_goes_through_every_stage(name: str, tmp_path: Path) -> None:
    options, change = DATASETS[name]
    raw = generate_example_dataset(tmp_path / "raw", name, seed=1, **options)
    if change is not None:
        change(raw)
    run_every_stage(raw, tmp_path)
    plan = read_json(tmp_path / "preprocessed" / name / "plans.json")
    crop = plan["pretraining"]["patch_size"]
    assert crop[1] == crop[2] or crop[0] in crop[1:]  # a plane that 90-degree rotations keep
    predictions = sorted(p.name for p in (tmp_path / "predictions").glob("*.nii.gz"))
    assert predictions == sorted(p.name.replace("_0000", "")
                                 for p in (raw / "imagesTr").glob("*_0000.nii.gz"))
