"""Log-mel features as NeMo's ``AudioToMelSpectrogramPreprocessor`` computes them, in plain torch.

Steps (NeMo's ``FilterbankFeatures``, NeMo 3.0): dither (training only) -> pre-emphasis, zeroed past each
clip's end -> ``torch.stft`` (center, zero padding, symmetric Hann window of ``window_size`` seconds inside
``n_fft``) -> power (|X|^mag_power) -> Slaney mel filterbank (librosa's ``filters.mel(norm="slaney",
htk=False)``, computed here in numpy) -> log(x + 2**-24) -> per-feature normalisation over each clip's
valid frames -> frames past the clip set to 0 -> time padded with 0 to a multiple of ``pad_to``.

A clip of ``n`` samples has ``n // hop`` valid frames: NeMo's length formula since 2025 (#13827, which made
the features independent of batch padding; earlier NeMo counted ``n // hop + 1``).

The settings are NeMo's preprocessor keys (``features`` = number of mels, ``window_size`` in seconds), so
``config()`` can go as it is into model_config.json and Riva's preprocessor section.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn

from tao_launcher.errors import UsageError

#: NeMo's AudioToMelSpectrogramPreprocessor defaults (QuartzNet and Jasper configs).
DEFAULTS: Dict[str, object] = {
    "sample_rate": 16000,
    "window_size": 0.02,
    "window_stride": 0.01,
    "n_fft": 512,
    "window": "hann",
    "features": 64,
    "lowfreq": 0.0,
    "highfreq": None,
    "preemph": 0.97,
    "log_zero_guard_value": 2.0 ** -24,
    "normalize": "per_feature",
    "dither": 1e-5,
    "pad_to": 16,
    "mag_power": 2.0,
}
WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window,
           "blackman": torch.blackman_window, "bartlett": torch.bartlett_window}
NORMALIZE = ("per_feature", "all_features", "none")
NORM_EPS = 1e-5  # NeMo's CONSTANT: added to the std


def hz_to_mel(freq):
    """Slaney's mel scale (librosa ``htk=False``): linear below 1 kHz (3 mels per 200 Hz), log above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    linear = freq / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(freq, 1e-10) / min_log_hz) / logstep
    return np.where(freq >= min_log_hz, log, linear)


def mel_to_hz(mels):
    """Inverse of ``hz_to_mel``."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 weights, as librosa.filters.mel(norm="slaney", htk=False):
    triangles between mel-spaced edges, each scaled by 2 / (its bandwidth in Hz) so every filter has
    about the same energy."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


class MelFeatures(nn.Module):
    """Audio (B, samples) + lengths -> log-mel features (B, features, T) + frame lengths; see the module
    docstring. No gradients flow (NeMo's default); ``dither`` only in training mode."""

    def __init__(self, **settings):
        super().__init__()
        unknown = sorted(set(settings) - set(DEFAULTS))
        if unknown:
            raise UsageError(f"unknown preprocessor setting(s) {', '.join(unknown)}: "
                             f"use only {', '.join(DEFAULTS)}")
        cfg = {**DEFAULTS, **settings}
        if cfg["window"] not in WINDOWS:
            raise UsageError(f"preprocessor window {cfg['window']!r} is not known: use one of {', '.join(WINDOWS)}")
        if str(cfg["normalize"]).lower() not in NORMALIZE:
            raise UsageError(f"preprocessor normalize {cfg['normalize']!r} is not known: "
                             f"use one of {', '.join(NORMALIZE)}")
        self.sample_rate = int(cfg["sample_rate"])
        self.win_length = int(float(cfg["window_size"]) * self.sample_rate)
        self.hop_length = int(float(cfg["window_stride"]) * self.sample_rate)
        self.n_fft = int(cfg["n_fft"] or 2 ** math.ceil(math.log2(self.win_length)))
        if not 0 < self.win_length <= self.n_fft or self.hop_length <= 0:
            raise UsageError(f"preprocessor window_size {cfg['window_size']} s and window_stride "
                             f"{cfg['window_stride']} s must be positive and the window at most n_fft "
                             f"({self.n_fft} samples): fix them in the model section")
        self._config = cfg
        self.preemph = cfg["preemph"]
        self.dither = float(cfg["dither"])
        self.guard = float(cfg["log_zero_guard_value"])
        self.normalize = str(cfg["normalize"]).lower()
        self.pad_to = int(cfg["pad_to"])
        self.mag_power = float(cfg["mag_power"])
        self.register_buffer("window", WINDOWS[cfg["window"]](self.win_length, periodic=False), persistent=False)
        fb = mel_filterbank(self.sample_rate, self.n_fft, int(cfg["features"]), float(cfg["lowfreq"]),
                            cfg["highfreq"])
        self.register_buffer("fb", torch.from_numpy(fb), persistent=False)

    @classmethod
    def from_config(cls, config: Dict) -> "MelFeatures":
        return cls(**dict(config))

    def config(self) -> Dict:
        """The full settings (defaults filled in), JSON-able: ``from_config(config())`` rebuilds it."""
        return dict(self._config)

    @property
    def n_mels(self) -> int:
        return self.fb.shape[0]

    def feature_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames of a clip of ``lengths`` samples: ``n // hop`` (NeMo's get_seq_len, center=True)."""
        return torch.div(lengths.long(), self.hop_length, rounding_mode="floor")

    @torch.no_grad()
    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        audio = audio.float()
        batch, samples = audio.shape
        frames = self.feature_lengths(lengths)
        if self.training and self.dither > 0:
            audio = audio + self.dither * torch.randn_like(audio)
        if self.preemph:
            audio = torch.cat([audio[:, :1], audio[:, 1:] - self.preemph * audio[:, :-1]], dim=1)
            inside = torch.arange(samples, device=audio.device)[None, :] < lengths[:, None]
            audio = audio.masked_fill(~inside, 0.0)
        spec = torch.stft(audio, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window, center=True, pad_mode="constant", return_complex=True)
        power = torch.view_as_real(spec).pow(2).sum(-1)
        if self.mag_power != 2.0:
            power = power.pow(self.mag_power / 2.0)
        x = torch.log(torch.matmul(self.fb, power) + self.guard)  # (B, n_mels, T)
        valid = torch.arange(x.shape[-1], device=x.device)[None, :] < frames[:, None]  # (B, T)
        x = self._normalize(x, valid.unsqueeze(1), frames)
        x = x.masked_fill(~valid.unsqueeze(1), 0.0)
        if self.pad_to > 0 and x.shape[-1] % self.pad_to:
            x = nn.functional.pad(x, (0, self.pad_to - x.shape[-1] % self.pad_to), value=0.0)
        return x, frames

    def _normalize(self, x: torch.Tensor, valid: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """NeMo's normalize_batch: mean and unbiased std over the valid frames (per mel for per_feature,
        over all mels for all_features), std + 1e-5; a std over one frame counts as 0."""
        if self.normalize == "none":
            return x
        dims = (2,) if self.normalize == "per_feature" else (1, 2)
        count = (frames.to(x.dtype) * (1 if self.normalize == "per_feature" else x.shape[1])).view(-1, 1, 1)
        mean = torch.where(valid, x, 0.0).sum(dims, keepdim=True) / count.clamp(min=1)
        var = torch.where(valid, x - mean, 0.0).pow(2).sum(dims, keepdim=True) / (count - 1).clamp(min=1)
        std = torch.where(count > 1, var.sqrt(), 0.0) + NORM_EPS
        return (x - mean) / std
