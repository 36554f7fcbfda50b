"""Convolutional CTC acoustic models (Jasper, QuartzNet, Citrinet) built from NeMo's ``jasper:`` block lists
(their keys, checks and the architecture tables: asr/blocks.py).

A block is ``repeat`` sub-blocks [conv, BatchNorm(eps 1e-3), activation, dropout]; the last sub-block's
activation and dropout come after the optional squeeze-excite and the residual add (1x1 conv + BN on the block
input). ``stride`` applies to every sub-block (NeMo's ``stride_last: false``; the shipped tables only stride
one-sub-block blocks) or, with ``stride_last: true``, to the last one only; ``stride_add`` strides the
residual too (Citrinet). Every conv zeroes the padded time steps of its input first (NeMo's
``conv_mask: true``), so a clip's outputs do not depend on how much its batch is padded.

Module and parameter names follow NeMo's (``encoder.N.mconv.M.conv.weight``, ``decoder_layers.0``), so a
NeMo state dict loads as it is. What differs from NeMo: ``residual_dense`` (Jasper's dense residual) is not
built (``jasper_10x5`` uses plain residuals) and ``se_context_size`` must be -1. As in NeMo, a kernel is
scaled by ``kernel_size_factor`` and an even one is bumped to the next odd size ('same' padding needs odd).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from tao_launcher.asr.blocks import block_settings, total_stride
from tao_launcher.errors import UsageError

ACTIVATIONS = {"relu": nn.ReLU, "hardtanh": nn.Hardtanh, "selu": nn.SELU, "swish": nn.SiLU, "silu": nn.SiLU,
               "gelu": nn.GELU}


def time_mask(lengths: torch.Tensor, size: int, dtype=torch.float32) -> torch.Tensor:
    """(B, 1, size): 1 on each clip's valid time steps, 0 on its padding."""
    return (torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1).to(dtype)


class MaskedConv1d(nn.Module):
    """Conv1d with 'same' padding for odd kernels that zeroes its input past each clip's length first and
    returns the new lengths (changed only by a stride)."""

    # The banded form (below) of depthwise convs is used in training, and in evaluation where this is set: the
    # training module's validation sets it; inference and export keep the plain convolution.
    banded_eval = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = False):
        super().__init__()
        if kernel_size % 2 == 0:
            raise UsageError(f"conv kernel {kernel_size} is even: use an odd kernel ('same' padding needs it)")
        if stride > 1 and dilation > 1:
            raise UsageError(f"a block has stride {stride} and dilation {dilation}: only one of them may exceed 1")
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=dilation * (kernel_size - 1) // 2, dilation=dilation, groups=groups,
                              bias=bias)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        stride = self.conv.stride[0]
        if stride == 1:
            return lengths
        pad, dil, kernel = self.conv.padding[0], self.conv.dilation[0], self.conv.kernel_size[0]
        return torch.div(lengths + 2 * pad - dil * (kernel - 1) - 1, stride, rounding_mode="floor") + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = x * time_mask(lengths, x.shape[-1], x.dtype)
        if (self.training or self.banded_eval) and self._banded(x):
            return banded_depthwise_conv(x, self.conv.weight, self.conv.dilation[0]), lengths
        return self.conv(x), self.output_lengths(lengths)

    def _banded(self, x: torch.Tensor) -> bool:
        conv = self.conv
        return (conv.groups == conv.in_channels == conv.out_channels and conv.stride[0] == 1 and conv.bias is None
                and x.shape[1] * x.shape[2] ** 2 <= BANDED_MAX_ELEMENTS)


# Training on short clips spends most of its time in depthwise convolutions whose kernels (33-87 frames) are as
# long as the clips; as one batched matrix product with a banded (time x time) matrix per channel they train
# 2.5-3x faster on a CPU (benchmarks/RESULTS.md). Used while the matrices stay small (channels x time^2
# elements); inference and export keep the plain convolution, which computes the same function.
BANDED_MAX_ELEMENTS = 8 * 2**20


def banded_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """A 'same'-padded depthwise conv1d (stride 1) of ``x`` (B, C, T) with ``weight`` (C, 1, K) as one batched
    matrix product over channels.

    Output step t takes input step s through tap ``s - t + pad`` of the dilated kernel, so each channel's
    (T x T) matrix is a Toeplitz band: the windows of one padded, reversed kernel row (``unfold``, whose
    backward sums the diagonals without a scatter). Reading the rows reversed is undone by reversing time in
    ``x``. Both operands are made contiguous: ``bmm`` on strided views falls back to one product per channel.
    """
    steps, kernel = x.shape[-1], weight.shape[-1]
    taps = weight[:, 0]
    if dilation > 1:  # the dilated kernel: dilation - 1 zeros between taps
        taps = F.pad(taps.unsqueeze(-1), (0, dilation - 1)).flatten(1)[:, :dilation * (kernel - 1) + 1]
    left = steps - 1 - dilation * (kernel - 1) // 2  # row[j] is the tap for s - t = j - (T - 1); negative: crop
    row = F.pad(taps, (left, 2 * steps - 1 - left - taps.shape[-1]))
    band = row.flip(-1).unfold(1, steps, 1).contiguous()  # (C, T, T): band[c, t, k] = row[2T - 2 - t - k]
    out = torch.bmm(band, x.flip(-1).permute(1, 2, 0).contiguous())  # (C, T, B)
    return out.permute(2, 0, 1).contiguous()


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU: 16 random bits per element, taken four at a time from
    full-range int64 draws, instead of a float Bernoulli draw each. Drawing the mask was a sixth of a QuartzNet
    training step on a 2-core CPU (benchmarks/RESULTS.md). The keep probability is 1 - p to 1/65536 and kept
    values are scaled by its inverse, so the expected output is the input, as ``nn.Dropout``'s. Other devices
    and evaluation use ``nn.Dropout`` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        count = x.numel()
        bits = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-2**63, None)  # every bit random
        threshold = min(32767, round(-32768 + self.p * 65536))
        keep = bits.view(torch.int16)[:count].view(x.shape) >= threshold
        return x * (keep.to(x.dtype) * (65536 / (32768 - threshold)))


class SqueezeExcite(nn.Module):
    """Channel gates from the mean over each clip's valid frames (global context, as Citrinet)."""

    def __init__(self, channels: int, reduction_ratio: int = 8, activation: str = "relu"):
        super().__init__()
        hidden = max(1, channels // reduction_ratio)
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), ACTIVATIONS[activation](),
                                nn.Linear(hidden, channels, bias=False))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = x * time_mask(lengths, x.shape[-1], x.dtype)
        mean = x.sum(-1) / lengths.clamp(min=1).to(x.dtype)[:, None]  # (B, C)
        return x * torch.sigmoid(self.fc(mean)).unsqueeze(-1), lengths


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, dilation: int, separable: bool) -> List[nn.Module]:
    if separable:  # depthwise (carries kernel, stride, dilation) then pointwise
        convs = [MaskedConv1d(in_ch, in_ch, kernel, stride, dilation, groups=in_ch),
                 MaskedConv1d(in_ch, out_ch, 1)]
    else:
        convs = [MaskedConv1d(in_ch, out_ch, kernel, stride, dilation)]
    return convs + [nn.BatchNorm1d(out_ch, eps=1e-3, momentum=0.1)]


class JasperBlock(nn.Module):
    """One block of a block list (see the module docstring); ``forward(x, lengths) -> (y, lengths)``."""

    def __init__(self, in_channels: int, filters: int, kernel: int, repeat: int = 1, stride: int = 1,
                 dilation: int = 1, dropout: float = 0.0, residual: bool = False, separable: bool = False,
                 se: bool = False, se_reduction_ratio: int = 8, stride_last: bool = False,
                 residual_mode: str = "add", activation: str = "relu"):
        super().__init__()
        if residual_mode not in ("add", "stride_add"):
            raise UsageError(f"residual_mode {residual_mode!r} is not known: use 'add' or 'stride_add'")
        if residual and stride > 1 and (residual_mode != "stride_add" or (repeat > 1 and not stride_last)):
            raise UsageError(f"a residual block with stride {stride} needs residual_mode: stride_add and, with "
                             f"repeat > 1, stride_last: true (else the residual and the block output differ in "
                             f"length)")
        layers: List[nn.Module] = []
        channels = in_channels
        for index in range(repeat):
            last = index == repeat - 1
            layers += _conv_bn(channels, filters, kernel, stride if last or not stride_last else 1, dilation,
                               separable)
            if not last:
                layers += [ACTIVATIONS[activation](), Dropout(dropout)]
            channels = filters
        if se:
            layers.append(SqueezeExcite(filters, se_reduction_ratio, activation))
        self.mconv = nn.ModuleList(layers)
        self.res = None
        if residual:
            res_stride = stride if residual_mode == "stride_add" else 1
            self.res = nn.ModuleList([nn.ModuleList([MaskedConv1d(in_channels, filters, 1, res_stride),
                                                     nn.BatchNorm1d(filters, eps=1e-3, momentum=0.1)])])
        self.mout = nn.Sequential(ACTIVATIONS[activation](), Dropout(dropout))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out, out_lengths = x, lengths
        for layer in self.mconv:
            if isinstance(layer, (MaskedConv1d, SqueezeExcite)):
                out, out_lengths = layer(out, out_lengths)
            else:
                out = layer(out)
        if self.res is not None:
            conv, norm = self.res[0]
            out = out + norm(conv(x, lengths)[0])
        return self.mout(out), out_lengths


class ConvASREncoder(nn.Module):
    """features (B, feat_in, T) + lengths -> encoded (B, filters of the last block, T / stride) + lengths."""

    def __init__(self, feat_in: int, blocks: Sequence[Dict], activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise UsageError(f"activation {activation!r} is not known: use one of {', '.join(ACTIVATIONS)}")
        if not blocks:
            raise UsageError("the encoder block list is empty: give at least one block")
        layers = []
        for index, block in enumerate(blocks):
            cfg = block_settings(block, index)
            layers.append(JasperBlock(feat_in, activation=activation, **cfg))
            feat_in = cfg["filters"]
        self.encoder = nn.ModuleList(layers)
        self.feat_out = feat_in
        self.stride = total_stride(blocks)
        self.apply(_xavier)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = features
        for block in self.encoder:
            x, lengths = block(x, lengths)
        return x, lengths


class ConvASRDecoder(nn.Module):
    """1x1 conv to ``num_classes + 1`` (the CTC blank is the last class, as NeMo), then log-softmax:
    encoded (B, feat_in, T) -> log-probs (B, T, num_classes + 1)."""

    def __init__(self, feat_in: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.decoder_layers = nn.Sequential(nn.Conv1d(feat_in, num_classes + 1, kernel_size=1, bias=True))
        self.apply(_xavier)

    @property
    def blank_id(self) -> int:
        return self.num_classes

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.decoder_layers(encoded).transpose(1, 2), dim=-1)


def _xavier(module: nn.Module) -> None:
    """NeMo's init_weights(mode="xavier_uniform") on conv and linear weights."""
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight, gain=1.0)
