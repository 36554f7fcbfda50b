"""Batched inference of the NLP tasks over the two runners of core/inference.py (torch for evaluate and infer,
onnxruntime for infer_onnx), which take the same feeds: token ids (int64, batch x sequence).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from tao_launcher.core.data import collate_examples, length_sorted_batches
from tao_launcher.core.inference import Runner


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
