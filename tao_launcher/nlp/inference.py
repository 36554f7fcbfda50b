"""The two runners behind evaluate/infer (torch) and infer_onnx (onnxruntime), and batched inference.

A runner maps ``{input name: int64 array (batch, sequence)}`` to the model's outputs, a list in
``output_names`` order. Both runners take the same feeds, so every task's infer and infer_onnx
share one code path and give the same answers.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np
import torch

from tao_launcher.core.data import collate_examples, length_sorted_batches

Runner = Callable[[Dict[str, np.ndarray]], List[np.ndarray]]


def torch_runner(net) -> Runner:
    def run(feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        with torch.inference_mode():
            out = net(*[torch.from_numpy(feeds[name]) for name in net.input_names])
        return [o.float().numpy() for o in (out if isinstance(out, tuple) else (out,))]
    run.input_names = tuple(net.input_names)
    return run


def onnx_runner(model_bytes: bytes) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        return session.run(names, {k: v.astype(np.int64) for k, v in feeds.items()})
    run.input_names = tuple(i.name for i in session.get_inputs())
    return run


def run_batched(runner: Runner, examples: Sequence[Dict[str, List[int]]], batch_size: int,
                pad_id: int) -> List[List[np.ndarray]]:
    """Run encoded examples (``input_ids`` and optionally ``token_type_ids``) in length-sorted batches.

    Returns, in input order, one list per example with one array per model output: a per-token
    output (batch, sequence, ...) is cut to the example's own length, a per-example output is its row.
    """
    from tao_launcher.core.progress import track

    results: List[List[np.ndarray]] = [None] * len(examples)  # type: ignore[list-item]
    batches = length_sorted_batches([len(e["input_ids"]) for e in examples], batch_size)
    for batch in track(batches, desc="inference", unit="batch"):  # a bar on a terminal, for long inputs
        padded = collate_examples([examples[i] for i in batch], pad_id)  # the padding training uses
        outputs = runner({name: padded[name].numpy() for name in runner.input_names})
        for row, i in enumerate(batch):
            n = len(examples[i]["input_ids"])
            results[i] = [o[row, :n] if o.ndim >= 3 else o[row] for o in outputs]
    return results


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    p = np.exp(shifted)
    return p / p.sum(-1, keepdims=True)
