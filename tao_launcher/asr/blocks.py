"""NeMo's ``jasper:`` block lists: the architecture tables, their checks and defaults. No torch.

The encoder (asr/encoder.py) builds torch modules from these lists; the spec checks a user's explicit block
list with ``build_blocks`` before any work, which is why the tables live apart from the modules. A block
list is a list of dicts, one per block, with NeMo's keys (examples/asr/conf/*/*.yaml):

    filters (int, required), kernel ([int], required), repeat (1), stride ([1]), dilation ([1]),
    dropout (0.0), residual (false), separable (false: depthwise + pointwise when true), se (false),
    se_reduction_ratio (8), se_context_size (-1 = global, the only one supported), stride_last (false),
    residual_mode ("add" | "stride_add"), kernel_size_factor (1.0)
"""

from __future__ import annotations

import copy
import math
from typing import Dict, List, Optional, Sequence

from tao_launcher.errors import UsageError

BLOCK_DEFAULTS = {"repeat": 1, "stride": [1], "dilation": [1], "dropout": 0.0, "residual": False,
                  "separable": False, "se": False, "se_reduction_ratio": 8, "se_context_size": -1,
                  "stride_last": False, "residual_mode": "add", "kernel_size_factor": 1.0}
# NeMo keys accepted only at their no-op value (they select features this module does not build).
NOOP_KEYS = {"residual_dense": False, "groups": 1, "heads": -1, "future_context": -1,
             "se_interpolation_mode": "nearest"}


def _first(value) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def scaled_kernel(kernel: int, factor: float) -> int:
    """NeMo's compute_new_kernel_size: int(kernel * factor), at least 1, bumped to odd."""
    new = max(int(kernel * factor), 1)
    return new + 1 if new % 2 == 0 else new


def block_settings(block: Dict, index: int = 0) -> Dict:
    """One block dict checked and filled with defaults: kernel/stride/dilation as ints, the kernel scaled by
    ``kernel_size_factor``; a wrong key or value is a UsageError naming the block."""
    where = f"encoder block {index}"
    if not isinstance(block, dict):
        raise UsageError(f"{where} is {type(block).__name__}, not a mapping: write it as filters: 256, kernel: [33], ...")
    unknown = sorted(set(block) - set(BLOCK_DEFAULTS) - set(NOOP_KEYS) - {"filters", "kernel"})
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}: use only filters, kernel, "
                         f"{', '.join(BLOCK_DEFAULTS)}")
    for key, value in NOOP_KEYS.items():
        if key in block and block[key] != value:
            raise UsageError(f"{where} sets {key}: {block[key]}, which is not supported here: remove it "
                             f"(or set it to {value})")
    missing = [key for key in ("filters", "kernel") if key not in block]
    if missing:
        raise UsageError(f"{where} has no {' and no '.join(missing)}: every block needs filters and kernel")
    cfg = {**BLOCK_DEFAULTS, **{k: v for k, v in block.items() if k not in NOOP_KEYS}}
    try:
        out = {"filters": int(cfg["filters"]), "repeat": int(cfg["repeat"]),
               "kernel": _first(cfg["kernel"]),
               "stride": _first(cfg["stride"]), "dilation": _first(cfg["dilation"]),
               "dropout": float(cfg["dropout"]), "residual": bool(cfg["residual"]),
               "separable": bool(cfg["separable"]), "se": bool(cfg["se"]),
               "se_reduction_ratio": int(cfg["se_reduction_ratio"]), "stride_last": bool(cfg["stride_last"]),
               "residual_mode": str(cfg["residual_mode"])}
    except (TypeError, ValueError, IndexError) as err:
        raise UsageError(f"{where} has a value of the wrong type ({err}): numbers for filters, repeat, "
                         f"dropout; lists of one int for kernel, stride, dilation") from None
    if int(cfg["se_context_size"]) != -1:
        raise UsageError(f"{where} sets se_context_size: {cfg['se_context_size']}: only -1 (global context) "
                         f"is supported")
    if min(out["filters"], out["repeat"], out["kernel"], out["stride"], out["dilation"]) < 1 \
            or not 0.0 <= out["dropout"] < 1.0 or float(cfg["kernel_size_factor"]) <= 0:
        raise UsageError(f"{where}: filters, repeat, kernel, stride and dilation must be >= 1, dropout in "
                         f"[0, 1) and kernel_size_factor > 0")
    out["kernel"] = scaled_kernel(out["kernel"], float(cfg["kernel_size_factor"]))
    return out


def total_stride(blocks: Sequence[Dict]) -> int:
    """Frames of features per encoder output frame."""
    stride = 1
    for index, block in enumerate(blocks):
        cfg = block_settings(block, index)
        stride *= cfg["stride"] ** (1 if cfg["stride_last"] else cfg["repeat"])
    return stride


# ---- architecture tables (NeMo's example configs) -------------------------------------------------------

def _block(filters: int, kernel: int, **settings) -> Dict:
    block = {"filters": filters, "repeat": 1, "kernel": [kernel], "stride": [1], "dilation": [1],
             "dropout": 0.0, "residual": False}
    for key in ("stride", "dilation"):
        if key in settings:
            settings[key] = [settings[key]]
    block.update(settings)
    return block


def _quartznet(copies: int) -> List[Dict]:
    """QuartzNet (copies*5)x5: prologue C1, five B blocks each repeated ``copies`` times, epilogues C2, C3."""
    body = [(256, 33), (256, 39), (512, 51), (512, 63), (512, 75)]
    return ([_block(256, 33, stride=2, separable=True)]
            + [_block(f, k, repeat=5, residual=True, separable=True) for f, k in body for _ in range(copies)]
            + [_block(512, 87, dilation=2, separable=True), _block(1024, 1)])


def _jasper_10x5() -> List[Dict]:
    """jasper_10x5dr.yaml without its dense residual (plain residual per block instead)."""
    body = [(256, 11, 0.2), (384, 13, 0.2), (512, 17, 0.2), (640, 21, 0.3), (768, 25, 0.3)]
    return ([_block(256, 11, stride=2, dropout=0.2)]
            + [_block(f, k, repeat=5, dropout=d, residual=True) for f, k, d in body for _ in range(2)]
            + [_block(896, 29, dilation=2, dropout=0.4), _block(1024, 1, dropout=0.4)])


def _citrinet(filters: int, enc_final: int, dropout: float, kernel_size_factor: float = 1.0) -> List[Dict]:
    """Citrinet (8x stride): prologue, three mega-blocks of separable SE blocks whose first block strides
    by 2 (stride_last, stride_add), epilogue; 23 blocks, as citrinet_384/512/1024.yaml."""
    se = {"separable": True, "se": True, "se_context_size": -1}
    mega = [[11, 13, 15, 17, 19, 21], [13, 15, 17, 19, 21, 23, 25], [25, 27, 29, 31, 33, 35, 37, 39]]
    blocks = [_block(filters, 5, **se)]
    for kernels in mega:
        for i, kernel in enumerate(kernels):
            strided = {"stride": 2, "stride_last": True, "residual_mode": "stride_add"} if i == 0 else {}
            blocks.append(_block(filters, kernel, repeat=5, dropout=dropout, residual=True,
                                 kernel_size_factor=kernel_size_factor, **se, **strided))
    blocks.append(_block(enc_final, 41, kernel_size_factor=kernel_size_factor, **se))
    return blocks


#: arch name -> NeMo block list. citrinet_256 is citrinet_384.yaml with 256 filters (as that config's
#: header says to make Citrinet-C); citrinet_1024 keeps its config's kernel_size_factor 0.25.
ARCHS: Dict[str, List[Dict]] = {
    "quartznet_5x5": _quartznet(1),
    "quartznet_15x5": _quartznet(3),
    "jasper_10x5": _jasper_10x5(),
    "citrinet_256": _citrinet(256, 640, 0.0),
    "citrinet_384": _citrinet(384, 640, 0.0),
    "citrinet_1024": _citrinet(1024, 1024, 0.1, kernel_size_factor=0.25),
}


def scale_filters(filters: int, channel_scale: float) -> int:
    """``filters * channel_scale`` rounded to a multiple of 8, at least 8."""
    return max(8, int(round(filters * channel_scale / 8.0)) * 8)


def build_blocks(arch: str, channel_scale: float = 1.0, blocks: Optional[Sequence[Dict]] = None,
                 dropout: Optional[float] = None) -> List[Dict]:
    """The block list to build: ``blocks`` as given when set (it overrides both ``arch`` and
    ``channel_scale``), else ``ARCHS[arch]`` with every ``filters`` scaled by ``channel_scale``; ``dropout``,
    when set, replaces every block's (QuartzNet's tables have none, and a small data set overfits without)."""
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise UsageError(f"encoder dropout {dropout} must be at least 0 and less than 1 (e.g. 0.1)")
    if blocks:
        out = copy.deepcopy([dict(block) for block in blocks])
    else:
        if arch not in ARCHS:
            raise UsageError(f"model arch {arch!r} is not known: use one of {', '.join(ARCHS)}")
        if not (channel_scale > 0 and math.isfinite(channel_scale)):
            raise UsageError(f"channel_scale {channel_scale} must be a positive number (e.g. 0.25 or 1.0)")
        out = copy.deepcopy(ARCHS[arch])
        for block in out:
            block["filters"] = scale_filters(block["filters"], channel_scale)
    for index, block in enumerate(out):
        if dropout is not None:
            block["dropout"] = dropout
        if blocks:
            block_settings(block, index)  # the built-in tables are known good
    return out
