"""Log-mel features (tao_launcher/asr/features.py): NeMo's AudioToMelSpectrogramPreprocessor defaults,
the Slaney filterbank without librosa, lengths, normalisation, masking and padding invariance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tao_launcher.asr.features import DEFAULTS, MelFeatures, hz_to_mel, mel_filterbank, mel_to_hz
from tao_launcher.errors import UsageError


def tone_batch(lengths, samples=None, seed=0):
    """Noisy tones, zero past each length: a stand-in for speech with energy in every mel band."""
    gen = torch.Generator().manual_seed(seed)
    samples = samples or max(lengths)
    t = torch.arange(samples) / 16000.0
    audio = torch.stack([0.3 * torch.sin(2 * math.pi * (200 + 150 * i) * t) for i in range(len(lengths))])
    audio = audio + 0.05 * torch.randn(audio.shape, generator=gen)
    for row, n in enumerate(lengths):
        audio[row, n:] = 0.0
    return audio, torch.tensor(lengths)


def test_slaney_mel_scale_known_points():
    # linear below 1 kHz at 3 mels per 200 Hz, logarithmic above: 1 kHz is mel 15, and 6.4x the
    # frequency adds 27 mels
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    assert hz_to_mel(6400.0) == pytest.approx(42.0)
    assert hz_to_mel(2000.0) == pytest.approx(15.0 + 27.0 * math.log(2.0) / math.log(6.4))
    freqs = np.array([0.0, 123.0, 999.0, 1000.0, 4321.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs)), freqs, rtol=1e-12, atol=1e-9)


def test_filterbank_is_slaney_normalised_triangles():
    fb = mel_filterbank(16000, 512, 64)
    assert fb.shape == (64, 257) and fb.dtype == np.float32
    # values of librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, norm="slaney"), librosa 0.11
    assert fb[0, 1] == pytest.approx(0.014511282, rel=1e-5)
    assert fb[10, 16] == pytest.approx(0.016690133, rel=1e-5)
    assert fb[63, 250] == pytest.approx(0.0013737119, rel=1e-5)
    assert fb.sum() == pytest.approx(2.0461817, rel=1e-5)
    assert np.count_nonzero(fb[10]) == 3 and fb[10, :15].sum() == 0
    # each triangle peaks at its mel centre with height 2 / (its bandwidth in Hz): check it at the edges
    # computed from the formula, interpolating between FFT bins
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(8000.0), 66))
    freqs = np.linspace(0, 8000, 257)
    for band in (0, 20, 40, 63):
        left, centre, right = edges[band:band + 3]
        tri = np.clip(np.minimum((freqs - left) / (centre - left), (right - freqs) / (right - centre)), 0, None)
        np.testing.assert_allclose(fb[band], tri * 2.0 / (right - left), rtol=1e-5, atol=1e-9)


def test_shapes_and_lengths_follow_nemo():
    lengths = [16000, 12345, 1601, 159]
    features, frames = MelFeatures().eval()(*tone_batch(lengths))
    assert frames.tolist() == [n // 160 for n in lengths]  # NeMo's get_seq_len: (n + 512 - 512) // 160
    stft_frames = 16000 // 160 + 1
    assert features.shape == (4, 64, math.ceil(stft_frames / 16) * 16)  # padded to a multiple of 16
    for row, n in enumerate(frames.tolist()):
        assert torch.all(features[row, :, n:] == 0)  # masked past the clip, and the pad_to padding
        assert torch.all(features[row, :, :n].abs().sum(0) > 0)


def test_per_feature_normalisation_over_valid_frames():
    features, frames = MelFeatures().eval()(*tone_batch([16000, 9000]))
    for row, n in enumerate(frames.tolist()):
        valid = features[row, :, :n].double()
        torch.testing.assert_close(valid.mean(1), torch.zeros(64, dtype=torch.float64), atol=1e-4, rtol=0)
        torch.testing.assert_close(valid.std(1), torch.ones(64, dtype=torch.float64), atol=1e-3, rtol=0)


def test_a_clip_gets_the_same_features_alone_and_padded_in_a_batch():
    audio, lengths = tone_batch([16000, 7000])
    mel = MelFeatures().eval()
    batch, frames = mel(audio, lengths)
    alone, alone_frames = mel(audio[1:, :7000], lengths[1:])
    n = int(frames[1])
    assert int(alone_frames[0]) == n
    torch.testing.assert_close(batch[1, :, :n], alone[0, :, :n], atol=1e-4, rtol=1e-4)


def test_dither_only_in_training_mode():
    audio, lengths = tone_batch([8000])
    mel = MelFeatures()
    eval_a, _ = mel.eval()(audio, lengths)
    eval_b, _ = mel(audio, lengths)
    assert torch.equal(eval_a, eval_b)
    torch.manual_seed(1)
    train_a, _ = mel.train()(audio, lengths)
    torch.manual_seed(2)
    train_b, _ = mel(audio, lengths)
    assert not torch.equal(train_a, train_b)
    torch.manual_seed(1)
    assert torch.equal(train_a, mel(audio, lengths)[0])  # seeded: reproducible
    # dither 1e-5 barely moves features of real signal
    assert (train_a - eval_a).abs().max() < 0.05


def test_silence_gives_finite_features():
    features, frames = MelFeatures().eval()(torch.zeros(2, 4000), torch.tensor([4000, 100]))
    assert torch.isfinite(features).all() and frames.tolist() == [25, 0]


def test_config_round_trips_through_json():
    mel = MelFeatures.from_config({"features": 80, "window_size": 0.025})
    config = json.loads(json.dumps(mel.config()))
    assert config == {**DEFAULTS, "features": 80, "window_size": 0.025}
    again = MelFeatures.from_config(config)
    assert again.n_mels == 80 and again.win_length == 400 and again.hop_length == 160
    audio, lengths = tone_batch([5000])
    assert torch.equal(mel.eval()(audio, lengths)[0], again.eval()(audio, lengths)[0])


@pytest.mark.parametrize("bad", [{"n_mels": 64}, {"window": "kaiser"}, {"normalize": "per_clip"},
                                 {"window_size": 0.05}])
def test_bad_settings_are_usage_errors(bad):
    with pytest.raises(UsageError):
        MelFeatures.from_config(bad)
