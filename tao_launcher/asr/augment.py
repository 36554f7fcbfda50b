"""SpecAugment on log-mel features, as NeMo's ``SpectrogramAugmentation`` (vectorised SpecAugment plus
SpecCutout), drawn from torch's RNG so that the run's seed fixes it.

- ``freq_masks`` bands of width uniform in [0, freq_width) mels, anywhere in the mel axis;
- ``time_masks`` spans of width uniform in [0, time_width) frames, starting inside the clip's valid
  frames; ``time_width`` is a fraction of each clip's length when a float <= 1 (NeMo's adaptive width),
  else a number of frames (a float above 1, as a YAML spec may give it, is rounded);
- ``rect_masks`` rectangles up to ``rect_freq`` mels by ``rect_time`` frames (NeMo's SpecCutout, which the
  QuartzNet and Jasper configs use instead of SpecAugment), anywhere in the padded batch.

Masked cells take ``mask_value`` (0: the mean of the normalised features). Only in training mode.
"""

from __future__ import annotations

import torch
from torch import nn

from tao_launcher.errors import UsageError


def _spans(batch: int, count: int, width, room, device) -> tuple:
    """(start, end) of ``count`` spans per row: width = floor(U * width), start = floor(U * (room - width))."""
    width = torch.as_tensor(width, dtype=torch.float32, device=device).reshape(-1, 1)
    span = (torch.rand(batch, count, device=device) * width).long()
    room = torch.as_tensor(room, dtype=torch.float32, device=device).reshape(-1, 1)
    start = (torch.rand(batch, count, device=device) * (room - span).clamp(min=0)).long()
    return start, start + span


def _hits(start: torch.Tensor, end: torch.Tensor, size: int) -> torch.Tensor:
    """(B, count, size) bool: index inside [start, end) of each span."""
    index = torch.arange(size, device=start.device)
    return (index >= start.unsqueeze(-1)) & (index < end.unsqueeze(-1))


class SpecAugment(nn.Module):
    """``forward(features (B, F, T), lengths (B,)) -> features`` with the masks of the module docstring."""

    def __init__(self, freq_masks: int = 0, freq_width: int = 10, time_masks: int = 0,
                 time_width: int | float = 10, rect_masks: int = 0, rect_freq: int = 20,
                 rect_time: int = 5, mask_value: float = 0.0):
        super().__init__()
        for name, value in (("freq_masks", freq_masks), ("time_masks", time_masks), ("rect_masks", rect_masks),
                            ("freq_width", freq_width), ("rect_freq", rect_freq), ("rect_time", rect_time),
                            ("time_width", time_width)):
            if value < 0:
                raise UsageError(f"spec_augment {name} is {value}: it must be 0 or more")
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_fraction = int(time_masks), isinstance(time_width, float) and time_width <= 1.0
        self.time_width = float(time_width) if self.time_fraction else int(round(time_width))
        self.rect_masks, self.rect_freq, self.rect_time = int(rect_masks), int(rect_freq), int(rect_time)
        self.mask_value = float(mask_value)

    @torch.no_grad()
    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.training or not (self.freq_masks or self.time_masks or self.rect_masks):
            return features
        batch, n_freq, n_time = features.shape
        device = features.device
        mask = torch.zeros(batch, n_freq, n_time, dtype=torch.bool, device=device)
        if self.rect_masks:  # SpecCutout first, as NeMo: both corners anywhere in the padded batch
            f = _hits(*_spans(batch, self.rect_masks, self.rect_freq + 1, n_freq, device), n_freq)
            t = _hits(*_spans(batch, self.rect_masks, self.rect_time + 1, n_time, device), n_time)
            mask |= torch.bmm(f.transpose(1, 2).float(), t.float()) > 0  # (B, F, masks) @ (B, masks, T)
        if self.time_masks:
            frames = lengths.to(device=device, dtype=torch.float32)
            width = (self.time_width * frames).clamp(max=n_time) if self.time_fraction else self.time_width
            mask |= _hits(*_spans(batch, self.time_masks, width, frames, device), n_time).any(1)[:, None, :]
        if self.freq_masks:
            width = min(self.freq_width, n_freq)
            mask |= _hits(*_spans(batch, self.freq_masks, width, n_freq, device), n_freq).any(1)[:, :, None]
        return features.masked_fill(mask, self.mask_value)
