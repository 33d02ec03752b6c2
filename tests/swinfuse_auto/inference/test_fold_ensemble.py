from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from swinfuse_auto.errors import CheckpointError, ConfigError
from swinfuse_auto.inference.fold_ensemble import EnsemblePredictor, PredictionSettings
from swinfuse_auto.inference.tta import mirror_axes_combinations
from swinfuse_auto.models.fold_model import fold_checkpoints, load_fold_model, trained_folds

#: float32 so results compare with hand-computed passes (auto may pick bf16 on this CPU)
NO_TTA = PredictionSettings(mirror_axes=(), precision="fp32")


def _volume(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_fold_ensemble_equals_the_mean_of_single_fold_probabilities(
        one_channel_model: Path) -> None:
    volume = _volume((1, 40, 36, 50))  # overlapping windows along z and y
    calls: list[tuple[int, int]] = []
    ensemble = EnsemblePredictor.from_model_dir(one_channel_model, settings=NO_TTA)
    assert ensemble.folds == ["0", "1"]
    mean = ensemble.predict(volume, lambda done, total: calls.append((done, total)))
    singles = [EnsemblePredictor.from_model_dir(one_channel_model, [f], settings=NO_TTA)
               .predict(volume) for f in (0, 1)]
    assert mean.shape == (3, 40, 36, 50)
    torch.testing.assert_close(mean, (singles[0] + singles[1]) / 2, atol=1e-6, rtol=0)
    assert not torch.allclose(singles[0], singles[1])  # the folds really differ
    assert calls[-1][0] == calls[-1][1] == len(calls) == 4  # 2 x 2 windows, each runs both folds


def test_tta_is_the_mean_over_the_flips(one_channel_model: Path) -> None:
    volume = _volume((1, 32, 32, 64), seed=1)  # exactly one window: no blending involved
    axes = (0, 2)  # 4 passes keep the test short; all 8 go through the same code
    tta = EnsemblePredictor.from_model_dir(one_channel_model, [0], settings=PredictionSettings(
        mirror_axes=axes, precision="fp32")).predict(volume)
    plain = EnsemblePredictor.from_model_dir(one_channel_model, [0], settings=NO_TTA)
    network = load_fold_model(one_channel_model / "fold_0" / "checkpoint_final.pt").build_network()
    expected = torch.zeros(3, 32, 32, 64)
    with torch.no_grad():
        for combo in mirror_axes_combinations(axes):
            dims = [a + 1 for a in combo]
            logits = network(volume.flip(dims)[None])[0]
            expected += torch.softmax(logits, 0).flip(dims) / 4
    torch.testing.assert_close(tta, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(plain.predict(volume), tta, atol=1e-4)


def test_volume_smaller_than_the_patch(one_channel_model: Path) -> None:
    ensemble = EnsemblePredictor.from_model_dir(one_channel_model, [1], settings=NO_TTA)
    probabilities = ensemble.predict(_volume((1, 9, 20, 15)).numpy())
    assert probabilities.shape == (3, 9, 20, 15)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(9, 20, 15))


def test_wrong_channel_count_is_a_clear_error(one_channel_model: Path) -> None:
    ensemble = EnsemblePredictor.from_model_dir(one_channel_model, [0], settings=NO_TTA)
    with pytest.raises(ConfigError, match="C = 1"):
        ensemble.predict(_volume((2, 8, 8, 8)))


def test_only_final_checkpoints_count_and_errors_list_what_exists(
        one_channel_model: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(one_channel_model, tmp_path / "model"))
    (model / "fold_1" / "checkpoint_final.pt").rename(model / "fold_1" / "checkpoint_latest.pt")
    assert trained_folds(model) == ["0"]
    assert fold_checkpoints(model) == [model / "fold_0" / "checkpoint_final.pt"]
    with pytest.raises(CheckpointError, match=r"fold\(s\) 1 have.*fold_1 \(checkpoint_latest"):
        fold_checkpoints(model, [0, 1])
    shutil.rmtree(model / "fold_0")
    with pytest.raises(CheckpointError, match="no fold has"):
        fold_checkpoints(model)
    with pytest.raises(CheckpointError, match="does not exist"):
        fold_checkpoints(tmp_path / "nowhere")


def test_folds_of_different_plans_are_not_ensembled(
        one_channel_model: Path, model_factory: Callable[..., Path], tmp_path: Path) -> None:
    other = model_factory(tmp_path / "other", ("CT", "T1"), (0,))
    models = [load_fold_model(one_channel_model / "fold_0" / "checkpoint_final.pt"),
              load_fold_model(other / "fold_0" / "checkpoint_final.pt")]
    with pytest.raises(CheckpointError, match="another plan"):
        EnsemblePredictor.from_fold_models(models, torch.device("cpu"))


@pytest.mark.parametrize("kwargs, match", [({"step_fraction": 0.0}, "step_fraction"),
                                           ({"mirror_axes": (3,)}, "mirror axes"),
                                           ({"window_batch_size": 0}, "window_batch_size")])
def test_invalid_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PredictionSettings(**kwargs)
