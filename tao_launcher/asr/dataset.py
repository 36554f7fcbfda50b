"""Utterances as training examples: log-mel features computed once per run, and their batches.

NeMo decodes, resamples and featurises every clip again in every epoch; the audio does not change
between epochs, so here each clip is read, resampled (asr/audio.py) and turned into features once,
kept in memory (64 mels x 100 frames a second of float32: 25 KB per second of audio), and only
SpecAugment (training) is applied per batch. Dither is drawn once, at caching time. Speed
perturbation (``speed_copies``) fits the cache the same way: a fixed set of copies of each clip at
other speeds, featurised once, as Kaldi's 3-way recipe does, rather than a random speed per epoch.

An example is ``{"features": (mels, frames) tensor, "targets": token ids, "duration": seconds}``;
``collate_utterances`` pads a batch to its longest clip (the encoder masks the padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import torch

from tao_launcher.core.data import length_sorted_batches

FEATURE_BATCH = 16  # clips featurised together (length-sorted, so little padding)


def audio_batch(clips: Sequence) -> Dict[str, torch.Tensor]:
    """Pad mono float32 sample arrays into (batch, samples) with their lengths."""
    longest = max(len(c) for c in clips)
    audio = torch.zeros((len(clips), max(longest, 1)), dtype=torch.float32)
    for row, clip in enumerate(clips):
        audio[row, :len(clip)] = torch.as_tensor(clip, dtype=torch.float32)
    return {"audio": audio, "lengths": torch.tensor([len(c) for c in clips], dtype=torch.long)}


@dataclass(frozen=True)
class SpeedCopy:
    """An utterance played at ``speed`` (1.0: as recorded); ``duration`` is the copy's."""

    utterance: Any
    speed: float

    @property
    def duration(self) -> float:
        return self.utterance.duration / self.speed


def extra_speeds(speeds: Sequence[float]) -> List[float]:
    """The speeds that add copies: 1.0 (the recording itself) and repeats left out, in increasing order."""
    return sorted({float(s) for s in speeds} - {1.0})


def speed_copies(utterances: Sequence, speeds: Sequence[float] = (),
                 max_duration: float = float("inf")) -> List[SpeedCopy]:
    """Every utterance as recorded, then again at each of ``extra_speeds(speeds)``; a copy slowed beyond
    ``max_duration`` seconds is left out (the recordings were already cut to it)."""
    copies = [SpeedCopy(u, speed) for speed in extra_speeds(speeds) for u in utterances]
    return [SpeedCopy(u, 1.0) for u in utterances] + [c for c in copies if c.duration <= max_duration]


def featurize(preprocessor, load, items: Sequence, desc: str = "features") -> List[torch.Tensor]:
    """Features (mels, frames) of every item, in input order; ``load(item)`` gives its samples.

    Clips are read and featurised in length-sorted groups of FEATURE_BATCH; the preprocessor's mode decides
    whether dither is added (training) or not.
    """
    from tao_launcher.core.progress import track

    durations = [getattr(item, "duration", 0.0) for item in items]
    out: List[torch.Tensor] = [None] * len(items)  # type: ignore[list-item]
    with torch.no_grad():
        for batch in track(length_sorted_batches(durations, FEATURE_BATCH), desc=desc, unit="batch"):
            padded = audio_batch([load(items[i]) for i in batch])
            features, lengths = preprocessor(padded["audio"], padded["lengths"])
            for row, i in enumerate(batch):
                out[i] = features[row, :, :int(lengths[row])].clone()
    return out


def pad_features(features: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """(mels, frames) tensors as (batch, mels, longest) padded with zeros, and their frame counts."""
    longest = max(f.shape[1] for f in features)
    batch = torch.zeros((len(features), features[0].shape[0], longest))
    for row, f in enumerate(features):
        batch[row, :, :f.shape[1]] = f
    return {"features": batch, "feature_lengths": torch.tensor([f.shape[1] for f in features], dtype=torch.long)}


def collate_utterances(examples: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
    """features (batch, mels, frames) padded with zeros, feature_lengths, targets padded with 0, target_lengths,
    durations (what the trainer counts as audio seconds)."""
    padded = pad_features([e["features"] for e in examples])
    target_longest = max(len(e["targets"]) for e in examples)
    targets = torch.zeros((len(examples), max(target_longest, 1)), dtype=torch.long)
    for row, e in enumerate(examples):
        targets[row, :len(e["targets"])] = torch.tensor(e["targets"], dtype=torch.long)
    return {**padded, "targets": targets, "target_lengths": torch.tensor([len(e["targets"]) for e in examples]),
            "durations": torch.tensor([e["duration"] for e in examples], dtype=torch.float64)}
