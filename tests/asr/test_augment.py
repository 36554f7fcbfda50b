"""SpecAugment (tao_launcher/asr/augment.py): NeMo's frequency/time masks and SpecCutout rectangles, from
torch's RNG, only in training mode."""

from __future__ import annotations

import pytest
import torch

from tao_launcher.asr.augment import SpecAugment
from tao_launcher.errors import UsageError


def features(batch=4, n_freq=64, n_time=200, seed=0):
    """Values far from 0, so every 0 in the output is a masked cell."""
    gen = torch.Generator().manual_seed(seed)
    return 5.0 + torch.rand(batch, n_freq, n_time, generator=gen)


def test_eval_mode_is_the_identity():
    x = features()
    aug = SpecAugment(freq_masks=2, freq_width=27, time_masks=2, time_width=0.05, rect_masks=5).eval()
    assert aug(x, torch.full((4,), 200)) is x


def test_frequency_masks_are_whole_bands_of_bounded_width():
    torch.manual_seed(0)
    x = features()
    out = SpecAugment(freq_masks=2, freq_width=10).train()(x, torch.full((4,), 200))
    masked = out == 0
    rows = masked.all(2)  # (B, F): whole mel rows
    assert torch.equal(masked, rows[:, :, None].expand_as(masked))
    assert rows.sum(1).max() <= 2 * 9 and rows.any()
    assert torch.all(x > 4)  # the input is not changed in place


def test_time_masks_stay_inside_each_clip():
    torch.manual_seed(0)
    x = features(batch=8)
    lengths = torch.tensor([200, 150, 100, 60, 200, 150, 100, 60])
    out = SpecAugment(time_masks=3, time_width=20).train()(x, lengths)
    masked = out == 0
    cols = masked.all(1)  # (B, T): whole frames
    assert torch.equal(masked, cols[:, None, :].expand_as(masked))
    assert cols.any()
    for row, n in enumerate(lengths.tolist()):
        assert not cols[row, n:].any()
        assert cols[row].sum() <= 3 * 19


def test_fractional_time_width_scales_with_the_clip():
    torch.manual_seed(0)
    lengths = torch.tensor([200, 40] * 8)
    out = SpecAugment(time_masks=1, time_width=0.1).train()(features(batch=16), lengths)
    widths = (out == 0).all(1).sum(1)
    assert widths[1::2].max() < 4 and widths[0::2].max() < 20 and widths[0::2].max() > widths[1::2].max()


def test_cutout_rectangles_are_bounded():
    torch.manual_seed(0)
    out = SpecAugment(rect_masks=1, rect_freq=10, rect_time=15).train()(features(batch=16), torch.full((16,), 200))
    for masked in out == 0:
        if masked.any():
            rows, cols = masked.any(1).nonzero()[:, 0], masked.any(0).nonzero()[:, 0]
            assert len(rows) <= 10 and len(cols) <= 15
            assert masked[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one full rectangle
            assert int(masked.sum()) == len(rows) * len(cols)


def test_seeded_runs_repeat_and_differ_between_seeds():
    aug = SpecAugment(freq_masks=2, freq_width=27, time_masks=2, time_width=0.05, rect_masks=2).train()
    x, lengths = features(), torch.tensor([200, 180, 120, 90])
    torch.manual_seed(3)
    first = aug(x, lengths)
    torch.manual_seed(3)
    assert torch.equal(first, aug(x, lengths))
    torch.manual_seed(4)
    assert not torch.equal(first, aug(x, lengths))


def test_time_width_float_above_one_counts_frames():
    aug = SpecAugment(time_masks=1, time_width=25.0)
    assert aug.time_width == 25 and not aug.time_fraction
    assert SpecAugment(time_masks=1, time_width=1.0).time_fraction  # NeMo: a float <= 1 is a fraction


@pytest.mark.parametrize("bad", [{"time_width": -0.5}, {"freq_masks": -1}, {"freq_width": -3}])
def test_bad_settings_are_usage_errors(bad):
    with pytest.raises(UsageError):
        SpecAugment(**bad)
