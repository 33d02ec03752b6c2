from __future__ import annotations

import pytest
import torch

from swinfuse_auto.errors import ConfigError, SwinfuseError
from swinfuse_auto.inference.sliding_window import (WindowAggregator, compute_window_starts,
                                                    gaussian_importance_map, pad_to_at_least,
                                                    sliding_window_predict, window_slices)
from swinfuse_auto.inference.tta import (mirror_axes_combinations, mirrored_predictor,
                                         predict_with_mirroring)

NUM_CLASSES = 3


def _voxelwise_logits(batch: torch.Tensor) -> torch.Tensor:
    """Large one-hot logits of a per-voxel function of the input (flip- and shift-equivariant)."""
    classes = torch.bucketize(batch[:, 0], torch.tensor([-0.5, 0.5]))
    return 50.0 * torch.nn.functional.one_hot(classes, NUM_CLASSES).permute(0, 4, 1, 2, 3).float()


def _position_dependent_logits(batch: torch.Tensor) -> torch.Tensor:
    """Not flip-equivariant: the logits depend on where a voxel sits in the window."""
    ramp = torch.linspace(-1, 1, batch.shape[2]).view(1, -1, 1, 1)
    x = batch[:, 0]
    return torch.stack([x * ramp, x.roll(1, dims=3), -x + ramp], dim=1)


def _expected(volume: torch.Tensor) -> torch.Tensor:
    return torch.softmax(_voxelwise_logits(volume[None]), dim=1)[0]


@pytest.mark.parametrize("shape, patch, step, expected", [
    (64, 32, 0.5, [0, 16, 32]),      # exact fit
    (32, 32, 0.5, [0]),              # image equals patch
    (20, 32, 0.5, [0]),              # image smaller than patch: one window, padded later
    (70, 32, 0.5, [0, 13, 25, 38]),  # uneven: evenly spread, steps <= 16
    (64, 32, 1.0, [0, 32]),          # no overlap
])
def test_window_starts(shape: int, patch: int, step: float, expected: list[int]) -> None:
    assert compute_window_starts((shape, 8, 8), (patch, 8, 8), step) == [expected, [0], [0]]


@pytest.mark.parametrize("size", range(33, 140, 7))
def test_window_starts_cover_the_axis_with_the_required_overlap(size: int) -> None:
    starts = compute_window_starts((size, 1, 1), (32, 1, 1), 0.5)[0]
    assert starts[0] == 0 and starts[-1] == size - 32
    assert all(0 < b - a <= 16 for a, b in zip(starts, starts[1:]))


def test_window_slices_and_invalid_options() -> None:
    slices = window_slices((10, 8, 8), (8, 8, 8))
    assert slices == [(slice(0, 8), slice(0, 8), slice(0, 8)), (slice(2, 10), slice(0, 8),
                                                               slice(0, 8))]
    with pytest.raises(ConfigError, match="step_fraction"):
        compute_window_starts((10, 8, 8), (8, 8, 8), 0.0)
    with pytest.raises(ConfigError, match="patch_size"):
        window_slices((10, 8, 8), (8, 8))


@pytest.mark.parametrize("patch", [(7, 8, 9), (16, 16, 16)])
def test_gaussian_map_peaks_at_one_is_symmetric_and_positive(patch: tuple[int, int, int]) -> None:
    gauss = gaussian_importance_map(patch)
    assert gauss.shape == patch and gauss.dtype == torch.float32
    assert gauss.max().item() == pytest.approx(1.0)
    assert gauss.min().item() > 0
    for axis in range(3):
        torch.testing.assert_close(gauss, gauss.flip(axis))
    assert gauss[tuple(p // 2 for p in patch)] > gauss[0, 0, 0]


def test_gaussian_map_never_reaches_zero() -> None:
    gauss = gaussian_importance_map((32, 32, 32), sigma_scale=1 / 64)
    assert gauss.min().item() > 0


def test_pad_to_at_least_centres_and_undoes() -> None:
    volume = torch.arange(2 * 5 * 8 * 3, dtype=torch.float32).view(2, 5, 8, 3)
    padded, slicer = pad_to_at_least(volume, (8, 8, 8))
    assert padded.shape == (2, 8, 8, 8)
    assert torch.equal(padded[slicer], volume)
    assert torch.equal(padded[:, 1:6, :, 2:5], volume)  # (8-5)//2 = 1 before, (8-3)//2 = 2
    assert padded.sum() == volume.sum()


@pytest.mark.parametrize("shape", [(13, 17, 11), (5, 6, 7), (9, 3, 20)])
def test_sliding_window_reproduces_the_full_volume_result(shape: tuple[int, int, int]) -> None:
    volume = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    probs = sliding_window_predict(volume, _voxelwise_logits, (8, 8, 8), NUM_CLASSES)
    assert probs.shape == (NUM_CLASSES, *shape) and probs.dtype == torch.float32
    torch.testing.assert_close(probs, _expected(volume))
    assert torch.equal(probs.argmax(0), _expected(volume).argmax(0))


def test_window_batching_does_not_change_the_result() -> None:
    volume = torch.randn(2, 15, 12, 10, generator=torch.Generator().manual_seed(1))
    one = sliding_window_predict(volume, _position_dependent_logits, (8, 8, 8), 3,
                                 window_batch_size=1)
    four = sliding_window_predict(volume, _position_dependent_logits, (8, 8, 8), 3,
                                  window_batch_size=4, output_device="cpu")
    assert torch.equal(one, four)
    torch.testing.assert_close(one.sum(0), torch.ones(15, 12, 10))


def test_uniform_weights_and_progress_callback() -> None:
    volume = torch.randn(1, 12, 12, 12, generator=torch.Generator().manual_seed(2))
    calls: list[tuple[int, int]] = []
    probs = sliding_window_predict(volume, _voxelwise_logits, (8, 8, 8), NUM_CLASSES,
                                   window_batch_size=3, use_gaussian=False,
                                   progress=lambda done, total: calls.append((done, total)))
    torch.testing.assert_close(probs, _expected(volume))
    assert calls == [(3, 8), (6, 8), (8, 8)]


def test_wrong_predictor_output_and_volume_rank_are_reported() -> None:
    volume = torch.zeros(1, 8, 8, 8)
    with pytest.raises(ConfigError, match=r"expected \(1, 2, 8, 8, 8\)"):
        sliding_window_predict(volume, _voxelwise_logits, (8, 8, 8), 2)
    with pytest.raises(ConfigError, match="must be 4D"):
        sliding_window_predict(volume[0], _voxelwise_logits, (8, 8, 8), NUM_CLASSES)


def test_aggregator_normalises_once() -> None:
    aggregator = WindowAggregator(2, (4, 4, 4), torch.full((4, 4, 4), 0.5), "cpu")
    aggregator.add(torch.full((1, 2, 4, 4, 4), 0.25), [(slice(0, 4),) * 3])
    torch.testing.assert_close(aggregator.finalize(), torch.full((2, 4, 4, 4), 0.25))
    with pytest.raises(SwinfuseError, match="already called"):
        aggregator.finalize()


def test_mirror_axes_combinations() -> None:
    combos = mirror_axes_combinations()
    assert len(combos) == 8 and len(set(combos)) == 8 and combos[0] == ()
    assert mirror_axes_combinations((2,)) == [(), (2,)]
    with pytest.raises(ConfigError, match="distinct spatial axes"):
        mirror_axes_combinations((0, 3))


def test_mirroring_an_equivariant_predictor_changes_nothing() -> None:
    batch = torch.randn(2, 1, 6, 7, 5, generator=torch.Generator().manual_seed(3))
    plain = torch.softmax(_voxelwise_logits(batch), dim=1)
    torch.testing.assert_close(predict_with_mirroring(_voxelwise_logits, batch), plain)


def test_mirroring_averages_the_eight_flipped_predictions() -> None:
    batch = torch.randn(1, 1, 6, 7, 5, generator=torch.Generator().manual_seed(4))
    by_hand = []
    for dims in [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]:
        logits = _position_dependent_logits(batch.flip(dims))
        by_hand.append(torch.softmax(logits, dim=1).flip(dims))
    expected = torch.stack(by_hand).mean(0)
    plain = torch.softmax(_position_dependent_logits(batch), dim=1)
    assert not torch.allclose(expected, plain)
    torch.testing.assert_close(predict_with_mirroring(_position_dependent_logits, batch), expected)


def test_mirrored_predictor_plugs_into_the_sliding_window() -> None:
    batch = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(5))
    wrapped = mirrored_predictor(_position_dependent_logits, (0, 2))
    torch.testing.assert_close(torch.softmax(wrapped(batch), dim=1),
                               predict_with_mirroring(_position_dependent_logits, batch, (0, 2)))
    volume = torch.randn(1, 11, 9, 10, generator=torch.Generator().manual_seed(6))
    probs = sliding_window_predict(volume, mirrored_predictor(_voxelwise_logits), (8, 8, 8),
                                   NUM_CLASSES, window_batch_size=2)
    torch.testing.assert_close(probs, _expected(volume))
