"""Audio files: read with soundfile, resample with soxr, write mono 16-bit wav. No torch here, so that
dataset_convert and the launcher's checks run without it (torchaudio's CPU wheels do not match our torch).

Samples are float32 numpy arrays in [-1, 1], one channel; a multi-channel file is mixed down to mono.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np
import soundfile
import soxr

from tao_launcher.errors import DataError

AUDIO_FIX = "convert it to mono wav or flac (e.g. ffmpeg -i IN -ac 1 -ar 16000 OUT.wav) or leave it out"
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # the only sample encodings that can hold NaN or infinity


def _unreadable(path, err: Exception) -> DataError:
    """soundfile's own reason (e.g. 'Format not recognised.'), without its 'Error opening PATH' prefix."""
    reason = getattr(err, "error_string", None) or str(err)
    return DataError(f"cannot read audio file {path}: {reason.rstrip('.')}; {AUDIO_FIX}")


def _check_finite(path, samples: np.ndarray, rate: int) -> None:
    """A NaN or infinite sample is bad data, not silence: it trains a NaN model, and a 16-bit wav stores it as
    full scale."""
    bad = ~np.isfinite(samples).all(axis=1)
    if bad.any():
        raise DataError(f"audio file {path} holds {int(bad.sum())} samples that are NaN or infinite (the first at "
                        f"{int(np.argmax(bad)) / rate:.3f} s): export it again from the original recording, or "
                        f"leave it out")


def _check_exists(path: Path) -> None:
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"audio file {path} {what}: check the path")


@dataclass(frozen=True)
class ClientAudio:
    """A whole audio file's bytes sent by a client (a served request), read as a file would be; ``name``
    says which item it was, for messages and answers."""

    data: bytes
    name: str

    def __str__(self) -> str:
        return self.name


def read_audio(path: str | Path | ClientAudio) -> Tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of a file in any format libsndfile reads."""
    if isinstance(path, ClientAudio):
        source = io.BytesIO(path.data)
    else:
        path = Path(path)
        _check_exists(path)
        source = str(path)
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, ValueError) as err:
        raise _unreadable(path, err) from None
    _check_finite(path, samples, rate)
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    return np.clip(mono, -1.0, 1.0), int(rate)  # a float file may hold values beyond full scale


def resample(samples: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """``samples`` at ``to_rate`` (soxr, high quality); the same array when the rates agree."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def change_speed(samples: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """The clip played ``speed`` times as fast, tempo and pitch together (Kaldi's and NeMo's speed
    perturbation): resampled to ``sample_rate / speed`` and read at ``sample_rate``."""
    return resample(samples, sample_rate, sample_rate / speed)


def load_audio(path: str | Path | ClientAudio, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate``, resampled when the file has another rate."""
    samples, rate = read_audio(path)
    return resample(samples, rate, sample_rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Mono 16-bit PCM wav, written to a temp name beside ``path`` then renamed: never half a file.

    Encoded in memory first: libsndfile's many small writes and seeks cost 25x the time on a real disk."""
    path = Path(path)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_bytes(buffer.getbuffer())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def audio_info(path: str | Path) -> Tuple[int, int, float]:
    """(frames, sample rate, duration in seconds) from the file's header alone: fast on a whole corpus. A float
    file, the only kind that can hold a NaN or infinite sample, is read whole and refused when it does."""
    path = Path(path)
    _check_exists(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, ValueError) as err:
        raise _unreadable(path, err) from None
    if info.subtype in FLOAT_SUBTYPES:
        read_audio(path)
    return int(info.frames), int(info.samplerate), info.frames / info.samplerate
