"""The example dataset: layout, geometry, anatomy, intensities, determinism and atomic writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from swinfuse_auto.dataset.cases import Case, find_cases, training_cases
from swinfuse_auto.dataset.modality import Modality
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.errors import ConfigError, DatasetError
from swinfuse_auto.example_data import (CT_HU, ORGAN_LABELS, Tissue, generate_example_dataset,
                                        synthesize_case)
from swinfuse_auto.example_data import writer
from swinfuse_auto.io.image import read_geometry, read_image

TISSUE_OF_LABEL = {"liver": Tissue.LIVER, "spleen": Tissue.SPLEEN, "kidneys": Tissue.KIDNEY,
                   "spine": Tissue.BONE, "aorta": Tissue.AORTA}
SMALL = {"ct_cases": 2, "mr_cases": 1, "shape": (16, 24, 24)}


def _mr_cases(raw: Path) -> list[Case]:
    return find_cases(raw / "imagesTs", load_dataset_spec(raw), raw / "labelsTs")


def _pairs(raw: Path) -> list[tuple[Path, Path]]:
    cases = training_cases(raw, load_dataset_spec(raw)) + _mr_cases(raw)
    return [(case.channel_path(0), case.label) for case in cases]  # type: ignore[misc]


def test_layout_and_dataset_json(example_raw_dir: Path) -> None:
    spec = load_dataset_spec(example_raw_dir)
    assert spec.channel_names == ("CT",)
    assert spec.labels == {"background": 0, **ORGAN_LABELS}
    assert spec.num_training == 6 and spec.file_ending == ".nii.gz"
    assert {"description", "source"} <= set(spec.raw)
    train = training_cases(example_raw_dir, spec)
    test = _mr_cases(example_raw_dir)
    assert [c.case_id for c in train] == [f"ct_{i:03d}" for i in range(6)]
    assert [c.case_id for c in test] == [f"mr_{i:03d}" for i in range(4)]
    assert all(c.label is not None and not c.missing_channels for c in train + test)
    assert (example_raw_dir / "imagesTr" / "ct_000_0000.nii.gz").is_file()
    assert (example_raw_dir / "labelsTs" / "mr_003.nii.gz").is_file()
    assert sorted(spec.case_channel_names) == [c.case_id for c in test]
    assert all(spec.modalities_for(c.case_id) == (Modality.MR,) for c in test)
    assert spec.modalities_for("ct_000") == (Modality.CT,)
    leftovers = [p.name for p in example_raw_dir.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_geometry_shared_anisotropic_and_varied(example_raw_dir: Path) -> None:
    geometries = []
    for image_path, label_path in _pairs(example_raw_dir):
        image, label = read_geometry(image_path), read_geometry(label_path)
        assert image.mismatch(label) == [], image_path.name
        geometries.append(image)
    spacings = [g.spacing_zyx for g in geometries]
    assert all(z > 1.2 * y and y == pytest.approx(x) for z, y, x in spacings)
    assert len(set(spacings)) == len(spacings)
    assert len({g.size for g in geometries}) > 1
    directions = [np.array(g.direction).reshape(3, 3) for g in geometries]
    assert any(not np.allclose(d, np.eye(3)) and np.all(np.diag(d) > 0) for d in directions)
    assert any(np.any(np.diag(d) < 0) for d in directions)  # a flipped (RAS-stored) case
    assert all(np.linalg.norm(g.origin) > 1.0 for g in geometries)


def test_dtypes_and_every_organ_in_every_case(example_raw_dir: Path) -> None:
    for image_path, label_path in _pairs(example_raw_dir):
        image, _ = read_image(image_path, dtype=None)
        label, _ = read_image(label_path, dtype=None)
        expected = np.int16 if image_path.name.startswith("ct_") else np.uint16
        assert image.dtype == expected and label.dtype == np.uint8
        assert np.unique(label).tolist() == list(range(len(ORGAN_LABELS) + 1)), label_path.name
        assert min(np.count_nonzero(label == v) for v in ORGAN_LABELS.values()) >= 10


def test_anatomy_fixed_in_physical_space(example_raw_dir: Path) -> None:
    """The liver lies on the patient's right (LPS -x) whatever the stored orientation."""
    for image_path, label_path in _pairs(example_raw_dir):
        label = sitk.ReadImage(str(label_path))
        array = sitk.GetArrayFromImage(label)
        points = {}
        for name in ("liver", "spleen"):
            zyx = np.argwhere(array == ORGAN_LABELS[name]).mean(axis=0)
            points[name] = label.TransformContinuousIndexToPhysicalPoint(zyx[::-1].tolist())
        assert points["liver"][0] < points["spleen"][0], image_path.name


def test_ct_organ_intensities_are_plausible_hu(example_raw_dir: Path) -> None:
    interior = np.zeros((1, 3, 3), dtype=bool)
    interior[0] = True  # erode in-plane only: thick slices leave too little after 3D erosion
    for image_path, label_path in _pairs(example_raw_dir)[:6]:
        image, _ = read_image(image_path)
        label, _ = read_image(label_path, dtype=None)
        assert np.median(image[label == 0]) < -500  # mostly air around the body
        for name, value in ORGAN_LABELS.items():
            mask = label == value
            core = ndimage.binary_erosion(mask, interior)
            mask = core if core.sum() >= 10 else mask
            nominal, spread = CT_HU[TISSUE_OF_LABEL[name]]
            median = float(np.median(image[mask]))
            blurred = 50 if name in ("aorta", "spine") else 20  # thin: partial volume
            assert abs(median - nominal) <= spread + blurred, (image_path.name, name, median)


def test_mr_contrast_differs_from_ct() -> None:
    def median(case: object, *tissues: Tissue) -> float:
        mask = np.isin(case.tissue, tissues)  # type: ignore[attr-defined]
        return float(np.median(case.image[mask]))  # type: ignore[attr-defined]

    fat = (Tissue.SUBCUTANEOUS_FAT, Tissue.VISCERAL_FAT)
    for index in range(2):
        ct = synthesize_case("CT", index, shape=(24, 40, 40), seed=1)
        assert median(ct, *fat) < median(ct, Tissue.LIVER) < median(ct, Tissue.KIDNEY)
        assert median(ct, Tissue.BONE) > 400
    t1, t2 = (synthesize_case("MR", index, shape=(24, 40, 40), seed=1) for index in (0, 1))
    assert (t1.contrast, t2.contrast) == ("T1", "T2")
    assert median(t1, *fat) > median(t1, Tissue.LIVER) > median(t1, Tissue.SPLEEN)
    assert median(t1, Tissue.KIDNEY) < median(t1, Tissue.LIVER)
    assert median(t1, Tissue.BONE) < median(t1, Tissue.MUSCLE)
    # T2 (fat-suppressed): spleen and kidneys brighter than the liver, fat dark
    assert min(median(t2, Tissue.KIDNEY), median(t2, Tissue.SPLEEN)) > median(t2, Tissue.LIVER)
    assert median(t2, *fat) < median(t2, Tissue.LIVER)
    for mr in (t1, t2):
        assert 0 < median(mr, Tissue.AIR) < 0.2 * median(mr, Tissue.LIVER)  # Rician floor


def test_mr_follows_mr_protocols() -> None:
    """MR cases: thicker slices, coarser in-plane spacing and another field of view than CT."""
    for index in range(3):
        ct = synthesize_case("CT", index, shape=(24, 40, 40), seed=2).geometry
        mr = synthesize_case("MR", index, shape=(24, 40, 40), seed=2).geometry
        assert mr.spacing_zyx[0] >= 4.0 > 3.0 >= ct.spacing_zyx[0]
        assert mr.spacing_zyx[1] >= 1.2 >= ct.spacing_zyx[1]
        ct_fov = np.multiply(ct.shape_zyx, ct.spacing_zyx)
        mr_fov = np.multiply(mr.shape_zyx, mr.spacing_zyx)
        assert mr_fov[0] < 0.95 * ct_fov[0] and mr_fov[1] > 1.05 * ct_fov[1]


def test_mr_has_bias_field_and_arbitrary_scale() -> None:
    livers = []
    for index in range(3):
        case = synthesize_case("MR", index, shape=(24, 40, 40), seed=0)
        liver = case.image[case.tissue == Tissue.LIVER].astype(np.float64)
        livers.append(np.median(liver))
        assert liver.std() > 0.05 * np.median(liver)  # noise alone is about 2-4 %
    assert max(livers) / min(livers) > 1.1


def test_same_seed_same_arrays_other_seed_differs(tmp_path: Path) -> None:
    first = generate_example_dataset(tmp_path / "a", **SMALL, seed=5)  # type: ignore[arg-type]
    second = generate_example_dataset(tmp_path / "b", **SMALL, seed=5)  # type: ignore[arg-type]
    for (image_a, label_a), (image_b, label_b) in zip(_pairs(first), _pairs(second)):
        for path_a, path_b in ((image_a, image_b), (label_a, label_b)):
            array_a, geometry_a = read_image(path_a, dtype=None)
            array_b, geometry_b = read_image(path_b, dtype=None)
            assert array_a.tobytes() == array_b.tobytes() and geometry_a == geometry_b
    other = synthesize_case("CT", 0, shape=(16, 24, 24), seed=6)
    assert not np.array_equal(other.image, read_image(_pairs(first)[0][0], dtype=None)[0])


def test_case_does_not_depend_on_case_count(example_raw_dir: Path, tmp_path: Path) -> None:
    """ct_001 is the same subject in a 2-case and a 6-case dataset, and MR is another subject."""
    raw = generate_example_dataset(tmp_path, ct_cases=2, mr_cases=0, shape=(32, 48, 48))
    name = Path("imagesTr") / "ct_001_0000.nii.gz"
    small, small_geometry = read_image(raw / name, dtype=None)
    full, full_geometry = read_image(example_raw_dir / name, dtype=None)
    assert np.array_equal(small, full) and small_geometry == full_geometry
    in_memory = synthesize_case("CT", 1, shape=(32, 48, 48), seed=0)
    assert np.array_equal(in_memory.image, full)
    mr = synthesize_case("MR", 1, shape=(32, 48, 48), seed=0)
    assert mr.label.shape != in_memory.label.shape or not np.array_equal(mr.label, in_memory.label)


def test_fixed_spacing_gives_exact_shape_and_spacing(tmp_path: Path) -> None:
    raw = generate_example_dataset(tmp_path, ct_cases=2, mr_cases=1, shape=(12, 30, 20),
                                   spacing=(2.5, 0.7, 0.8))
    for image_path, _ in _pairs(raw):
        geometry = read_geometry(image_path)
        assert geometry.shape_zyx == (12, 30, 20)
        assert np.allclose(geometry.spacing_zyx, (2.5, 0.7, 0.8))


def test_existing_folder_is_refused_unless_overwrite(tmp_path: Path) -> None:
    raw = generate_example_dataset(tmp_path, **SMALL)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="already exists.*--overwrite"):
        generate_example_dataset(tmp_path, **SMALL)  # type: ignore[arg-type]
    again = generate_example_dataset(tmp_path, ct_cases=1, mr_cases=0, shape=(16, 24, 24),
                                     overwrite=True)
    assert again == raw
    assert sorted(p.name for p in (raw / "imagesTr").iterdir()) == ["ct_000_0000.nii.gz"]
    assert not (raw / "imagesTs").exists()


def test_interrupted_generation_leaves_nothing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = writer.synthesize_case

    def fail_on_mr(modality: str, index: int, **kwargs: object) -> object:
        if modality == "MR":
            raise KeyboardInterrupt
        return real(modality, index, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "synthesize_case", fail_on_mr)
    with pytest.raises(KeyboardInterrupt):
        generate_example_dataset(tmp_path, **SMALL)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, match", [
    ({"shape": (4, 24, 24)}, "at least 8"),
    ({"ct_cases": 0}, "ct_cases must be >= 1"),
    ({"spacing": (2.0, -1.0, 1.0)}, "three positive sizes"),
    ({"name": "a/b"}, "plain folder name"),
    ({"seed": -1}, "non-negative"),
])
def test_invalid_arguments_are_explained(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        generate_example_dataset(tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []
