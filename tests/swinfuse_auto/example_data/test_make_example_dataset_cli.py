"""The make_example_dataset command: exit codes, output, help."""

from __future__ import annotations

from pathlib import Path

import pytest

from swinfuse_auto.cli.make_example_dataset import build_parser, main
from swinfuse_auto.dataset.spec import load_dataset_spec
from swinfuse_auto.io.image import read_geometry

SMALL_ARGS = ["--ct-cases", "2", "--mr-cases", "1", "--shape", "16", "24", "24", "--seed", "3"]


def test_main_writes_dataset_and_prints_its_folder(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--name", "Dataset991_Cli", *SMALL_ARGS]) == 0
    folder = tmp_path / "Dataset991_Cli"
    assert capsys.readouterr().out.strip() == str(folder)
    spec = load_dataset_spec(folder)
    assert spec.num_training == 2 and list(spec.case_channel_names) == ["mr_000"]
    assert spec.raw["example_data"]["seed"] == 3


def test_main_refuses_existing_folder_then_overwrites(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), *SMALL_ARGS]) == 0
    capsys.readouterr()
    assert main([str(tmp_path), *SMALL_ARGS]) == 2
    assert "--overwrite" in capsys.readouterr().err
    args = [str(tmp_path), *SMALL_ARGS, "--spacing", "2.5", "0.7", "0.7", "--overwrite"]
    assert main(args) == 0
    image = next((tmp_path / "Dataset990_SwinfuseExample" / "imagesTr").iterdir())
    assert read_geometry(image).shape_zyx == (16, 24, 24)


def test_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-h"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("OUTPUT_ROOT", "--name", "--ct-cases", "--mr-cases", "--shape", "--spacing",
                 "--seed", "--overwrite"):
        assert flag in text
    undocumented = [a.dest for a in build_parser()._actions if not a.help]
    assert undocumented == []
