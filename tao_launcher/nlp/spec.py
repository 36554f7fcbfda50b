"""Spec sections that several NLP tasks share (imports no torch: the launcher reads them).

``WordDataSpec`` is NeMo's pair of parallel files in ``data_dir`` (``text_*.txt``, one sentence a
line, and ``labels_*.txt``, one label per word), used by token_classification and
punctuation_and_capitalization. ``ExportFields`` and ``InferFields`` are the fields every NLP
task's export and infer take; a task's schema subclasses them and adds its example.
"""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from typing import Optional

from tao_launcher.spec.schema import OptimSpec, SpecBase, spec_field


def word_data_spec(name: str, split: str, batch_size: int, training: bool) -> type:
    """A ``{text_file, labels_file, batch_size, num_samples[, shuffle], num_workers}`` section for ``split``."""
    fields = [
        ("text_file", str, spec_field(f"text_{split}.txt", "file in data_dir: one sentence a line, words separated by spaces")),
        ("labels_file", str, spec_field(f"labels_{split}.txt", "file in data_dir: one label per word of the same line of text_file")),
        ("batch_size", int, spec_field(batch_size, "windows (sentences) per batch")),
        ("num_samples", int, spec_field(-1, "use only the first N sentences (-1: all)")),
    ]
    if training:
        fields.append(("shuffle", bool, spec_field(True, "shuffle every epoch (batches are formed from windows of similar length)")))
    fields.append(("num_workers", int, spec_field(0, "DataLoader worker processes (0: load in the main process)")))
    return make_dataclass(name, fields)


@dataclass
class ExportFields(SpecBase):
    export_format: str = spec_field("RIVA", "RIVA (.riva for Riva ServiceMaker) or ONNX (encrypted .eonnx)",
                                    choices=("RIVA", "ONNX"))
    export_to: Optional[str] = spec_field(None, "file name in the results folder (default exported-model.riva / .eonnx)")
    onnx_opset: int = spec_field(17, "ONNX opset version")


@dataclass
class WordOptimSpec(OptimSpec):
    """The optimizer of the word-level tasks: a higher peak rate, since their per-token heads start from
    scratch (NER on 2,000 CoNLL sentences x 1 epoch: entity F1 0.27 at 5e-5, 0.52 at 2e-4)."""

    lr: float = spec_field(2e-4, "peak learning rate")
