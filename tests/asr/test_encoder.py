"""Encoder blocks and architecture tables (tao_launcher/asr/encoder.py): NeMo's QuartzNet, Jasper and
Citrinet block lists, masking that makes a clip's output independent of its batch's padding, and an ONNX
export that onnxruntime runs with the same numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tao_launcher.asr.blocks import ARCHS, build_blocks, scale_filters, total_stride
from tao_launcher.asr.encoder import ConvASRDecoder, ConvASREncoder
from tao_launcher.errors import UsageError

EXPECTED = {  # arch: (blocks, total stride, mels of its NeMo config)
    "quartznet_5x5": (8, 2, 64), "quartznet_15x5": (18, 2, 64), "jasper_10x5": (13, 2, 64),
    "citrinet_256": (23, 8, 80), "citrinet_384": (23, 8, 80), "citrinet_1024": (23, 8, 80),
}
SMALL = [  # every kind of block at a small size: strided prologue, SE, stride_last + stride_add, dilation
    {"filters": 32, "repeat": 1, "kernel": [11], "stride": [2], "separable": True},
    {"filters": 32, "repeat": 2, "kernel": [7], "residual": True, "separable": True, "se": True},
    {"filters": 40, "repeat": 2, "kernel": [5], "stride": [2], "stride_last": True, "residual": True,
     "residual_mode": "stride_add", "separable": True, "se": True},
    {"filters": 48, "repeat": 1, "kernel": [9], "dilation": [2]},
    {"filters": 64, "repeat": 1, "kernel": [1]},
]


class Acoustic(nn.Module):
    """features + lengths -> log-probs + lengths: what the task exports."""

    def __init__(self, feat_in, blocks, num_classes=28):
        super().__init__()
        self.encoder = ConvASREncoder(feat_in, blocks)
        self.decoder = ConvASRDecoder(self.encoder.feat_out, num_classes)

    def forward(self, features, lengths):
        encoded, lengths = self.encoder(features, lengths)
        return self.decoder(encoded), lengths


def randomise_norms(model, seed=0):
    """Non-trivial BatchNorm statistics, as after training (fresh ones are the identity)."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            module.weight.data.copy_(0.5 + torch.rand(n, generator=gen))
            module.bias.data.copy_(0.1 * torch.randn(n, generator=gen))
    return model.eval()


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_each_arch_builds_scaled_with_its_blocks_and_stride(arch):
    n_blocks, stride, mels = EXPECTED[arch]
    blocks = build_blocks(arch, channel_scale=0.25)
    assert len(blocks) == n_blocks and total_stride(blocks) == stride
    assert [b["filters"] for b in blocks] == [scale_filters(b["filters"], 0.25) for b in ARCHS[arch]]
    torch.manual_seed(0)
    model = Acoustic(mels, blocks).eval()
    assert model.encoder.stride == stride and model.encoder.feat_out == blocks[-1]["filters"]
    lengths = torch.tensor([48, 37])
    with torch.no_grad():
        log_probs, out_lengths = model(torch.randn(2, mels, 48), lengths)
    assert out_lengths.tolist() == [-(-n // stride) for n in lengths.tolist()]  # ceil(n / stride)
    assert log_probs.shape == (2, -(-48 // stride), 29) and torch.isfinite(log_probs).all()
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]))


def test_channel_scale_rounds_to_multiples_of_eight():
    assert scale_filters(256, 0.25) == 64 and scale_filters(1024, 0.1) == 104 and scale_filters(256, 0.01) == 8
    assert build_blocks("quartznet_5x5", 0.5)[-1]["filters"] == 512
    assert ARCHS["quartznet_5x5"][-1]["filters"] == 1024  # the table itself is not changed


def test_citrinet_1024_keeps_its_config_kernel_size_factor():
    encoder = ConvASREncoder(80, build_blocks("citrinet_1024", 0.125))
    depthwise = [b.mconv[0].conv.kernel_size[0] for b in encoder.encoder]
    assert depthwise[:3] == [5, 3, 3] and depthwise[-1] == 11  # 11 * 0.25 -> 3, 41 * 0.25 -> 11 (odd)


@pytest.mark.parametrize("blocks", [SMALL, "citrinet_256", "quartznet_5x5"])
def test_a_clip_gets_the_same_log_probs_alone_and_padded_in_a_batch(blocks):
    torch.manual_seed(0)
    blocks = SMALL if isinstance(blocks, list) else build_blocks(blocks, 0.25)
    model = randomise_norms(Acoustic(64, blocks))
    short, long = 45, 130
    batch = torch.randn(2, 64, long)
    batch[1, :, short:] = 100 * torch.randn(64, long - short)  # garbage in the padding: masking must hide it
    with torch.no_grad():
        batched, batched_lengths = model(batch, torch.tensor([long, short]))
        alone, alone_lengths = model(batch[1:, :, :short].clone(), torch.tensor([short]))
    n = int(alone_lengths[0])
    assert int(batched_lengths[1]) == n
    torch.testing.assert_close(batched[1, :n], alone[0, :n], atol=1e-5, rtol=0)


def test_explicit_blocks_override_arch_and_scale():
    blocks = build_blocks("citrinet_1024", channel_scale=0.25, blocks=SMALL)
    assert blocks == SMALL and blocks is not SMALL
    encoder = ConvASREncoder(64, blocks)
    assert len(encoder.encoder) == 5 and encoder.feat_out == 64 and encoder.stride == 4


def test_encoder_dropout_replaces_every_blocks_own():
    assert {b["dropout"] for b in build_blocks("quartznet_5x5", 0.25)} == {0.0}
    for blocks in (build_blocks("jasper_10x5", 0.25, dropout=0.1), build_blocks("x", blocks=SMALL, dropout=0.1)):
        assert {b["dropout"] for b in blocks} == {0.1}
    encoder = ConvASREncoder(64, build_blocks("quartznet_5x5", 0.25, dropout=0.1))
    rates = {m.p for m in encoder.modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.1}
    assert SMALL[0].get("dropout", 0.0) != 0.1  # the caller's table is not changed
    with pytest.raises(UsageError, match="dropout"):
        build_blocks("quartznet_5x5", dropout=1.0)


def test_quartznet_5x5_has_nemos_published_size():
    # QuartzNet 5x5: 6.7M parameters with the 28 characters + blank (QuartzNet paper, NeMo docs)
    model = Acoustic(64, build_blocks("quartznet_5x5"))
    assert abs(n_params(model) - 6.7e6) < 0.05e6
    assert model.decoder.decoder_layers[0].out_channels == 29 and model.decoder.blank_id == 28


def test_block_names_follow_nemo():
    names = set(dict(Acoustic(64, build_blocks("citrinet_256", 0.25)).named_parameters()))
    for name in ("encoder.encoder.1.mconv.0.conv.weight", "encoder.encoder.1.mconv.1.conv.weight",
                 "encoder.encoder.1.mconv.2.weight", "encoder.encoder.1.res.0.0.conv.weight",
                 "encoder.encoder.1.mconv.23.fc.0.weight", "decoder.decoder_layers.0.bias"):
        assert name in names, name


@pytest.mark.parametrize("blocks", [
    [{"filters": 32, "kernel": [0]}],
    [{"filters": 0, "kernel": [3]}],
    [{"filters": 32, "kernel": [5], "residual_dense": True}],
    [{"filters": 32, "kernel": [5], "se": True, "se_context_size": 128}],
    [{"filters": 32, "kernel": [5], "kernal_size": 3}],
    [{"filters": 32}],
    [{"filters": 32, "kernel": [5], "stride": [2], "repeat": 2, "residual": True}],
    [{"filters": 32, "kernel": [5], "stride": [2], "repeat": 2, "residual": True, "residual_mode": "stride_add"}],
    [{"filters": 32, "kernel": [5], "stride": [2], "dilation": [2]}],
])
def test_bad_blocks_are_usage_errors(blocks):
    with pytest.raises(UsageError):
        ConvASREncoder(64, build_blocks("quartznet_5x5", blocks=blocks))


def test_even_kernels_become_odd_as_in_nemo():
    encoder = ConvASREncoder(64, [{"filters": 16, "kernel": [4]}, {"filters": 16, "kernel": [9],
                                                                  "kernel_size_factor": 0.5}])
    assert [b.mconv[0].conv.kernel_size[0] for b in encoder.encoder] == [5, 5]
    assert encoder(torch.randn(1, 64, 30), torch.tensor([30]))[0].shape == (1, 16, 30)


def test_unknown_arch_is_a_usage_error():
    with pytest.raises(UsageError, match="quartznet_5x5"):
        build_blocks("quartznet_5x3")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo=False: the TorchScript exporter
def test_onnx_export_matches_torch(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = randomise_norms(Acoustic(64, SMALL))
    path = tmp_path / "acoustic.onnx"
    torch.onnx.export(model, (torch.randn(2, 64, 64), torch.tensor([64, 50])), str(path), dynamo=False,
                      opset_version=17, input_names=["audio_signal", "length"],
                      output_names=["logprobs", "encoded_lengths"],
                      dynamic_axes={"audio_signal": {0: "batch", 2: "time"}, "length": {0: "batch"},
                                    "logprobs": {0: "batch", 1: "time"}, "encoded_lengths": {0: "batch"}})
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    features, lengths = torch.randn(3, 64, 101), torch.tensor([101, 77, 20])  # other batch and time
    got_probs, got_lengths = session.run(None, {"audio_signal": features.numpy(), "length": lengths.numpy()})
    with torch.no_grad():
        want_probs, want_lengths = model(features, lengths)
    assert got_lengths.tolist() == want_lengths.tolist() == [26, 20, 5]
    for row, n in enumerate(want_lengths.tolist()):
        torch.testing.assert_close(torch.from_numpy(got_probs[row, :n]), want_probs[row, :n], atol=1e-4, rtol=0)


def test_banded_depthwise_conv_is_the_convolution_it_replaces_in_training():
    """The training-time banded product computes the plain depthwise convolution, values and gradients, dilated
    too, and with kernels wider than the clip."""
    import torch.nn.functional as F

    from tao_launcher.asr.encoder import banded_depthwise_conv

    torch.manual_seed(0)
    for channels, steps, kernel, dilation in ((8, 30, 7, 1), (16, 20, 33, 1), (4, 40, 9, 2), (4, 10, 33, 1),
                                              (4, 6, 5, 3)):
        x = torch.randn(3, channels, steps, requires_grad=True)
        w = torch.randn(channels, 1, kernel, requires_grad=True)
        plain = F.conv1d(x, w, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=channels)
        banded = banded_depthwise_conv(x, w, dilation)
        assert torch.allclose(plain, banded, atol=1e-4)
        grads = torch.autograd.grad(plain.square().sum(), (x, w))
        assert all(torch.allclose(a, b, atol=1e-3) for a, b in
                   zip(grads, torch.autograd.grad(banded.square().sum(), (x, w))))


def test_cpu_dropout_keeps_one_minus_p_scaled_and_is_the_identity_in_eval():
    """The integer-drawn mask: keep rate 1 - p, kept values scaled by its inverse (the mean is kept), the same
    mask in the gradient, a new mask each call, and nothing at all in evaluation."""
    from tao_launcher.asr.encoder import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.1)
    x = torch.ones(400, 1000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.003
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9), rtol=1e-4)
    assert abs(y.mean().item() - 1.0) < 0.005
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad, y.detach())
    assert not torch.equal(drop(x) != 0, kept)
    drop.eval()
    assert torch.equal(drop(x), x)
    assert isinstance(drop, nn.Dropout) and drop.p == 0.1
