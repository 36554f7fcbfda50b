"""ONNX export of a network that describes its own export, and the Riva ServiceMaker config.

The network names its inputs and outputs (``input_names``, ``output_names``), their dynamic
axes (``export_axes()``), example inputs (``example_inputs()``) and output shapes
(``output_dims()``), as NeMo's ``Exportable`` does; nothing here knows a task.

Uses the TorchScript-based exporter (``dynamo=False``): it needs no extra packages and
handles the Hugging Face encoders; the graph is checked with ``onnx.checker``. The network is
traced with eager attention (see ``_use_eager_attention``); export is the last use of ``net``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch


def export_onnx(net: torch.nn.Module, path: Path, *, opset: int = 17) -> None:
    import onnx

    net.eval()
    _use_eager_attention(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, net.example_inputs(), str(path), input_names=list(net.input_names),
                          output_names=list(net.output_names), dynamic_axes=net.export_axes(),
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    onnx.checker.check_model(str(path))


def _use_eager_attention(net: torch.nn.Module) -> None:
    """Trace attention as plain MatMul/Softmax: onnxruntime fuses that pattern, and runs it faster
    than the exported SDPA graph on CPU (measured: benchmarks/RESULTS.md). Outputs are unchanged."""
    for module in net.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            if hasattr(module, "set_attn_implementation"):
                module.set_attn_implementation("eager")
            else:
                config._attn_implementation = "eager"
            return


def riva_config(task: str, net) -> str:
    """What riva-build reads next to model.onnx: task, inputs, outputs, and the settings of the task's pre- and
    post-processing (``net.riva_settings()``: label files, tokenizer or vocabulary, feature settings)."""
    import yaml

    dims = net.output_dims()
    inputs = net.input_dims()
    return yaml.safe_dump({
        "riva_model": {"task": task, "model_file": "model.onnx", "format": "onnx",
                       "inputs": [{"name": name, "dtype": dtype, "dims": shape}
                                  for name, (dtype, shape) in inputs.items()],
                       "outputs": [{"name": name, "dtype": getattr(net, "output_dtypes", {}).get(name, "float32"),
                                    "dims": dims[name]} for name in net.output_names],
                       **net.riva_settings()},
    }, sort_keys=False)
