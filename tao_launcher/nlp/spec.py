"""Spec sections that several NLP tasks share (imports no torch: the launcher reads them).

``WordDataSpec`` is NeMo's pair of parallel files in ``data_dir`` (``text_*.txt``, one sentence a
line, and ``labels_*.txt``, one label per word), used by token_classification and
punctuation_and_capitalization. Every task's export fields are ``spec.schema.ExportFields``.
"""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass

from tao_launcher.spec.schema import (
    COUNT_OR_ALL, LEARNING_RATE, POSITIVE, WORKERS, OptimSpec, spec_field)


BIO_DECODING_HELP = ("decode tags as sequences that BIO allows (I-X only after B-X or I-X) rather than word by "
                     "word; used only when the training tags follow that rule (nlp/bio.py)")


def word_data_spec(name: str, split: str, batch_size: int, training: bool) -> type:
    """A ``{text_file, labels_file, batch_size, num_samples[, shuffle], num_workers}`` section for ``split``."""
    fields = [
        ("text_file", str, spec_field(f"text_{split}.txt", "file in data_dir: one sentence a line, words separated by spaces")),
        ("labels_file", str, spec_field(f"labels_{split}.txt", "file in data_dir: one label per word of the same line of text_file")),
        ("batch_size", int, spec_field(batch_size, "windows (sentences) per batch", **POSITIVE)),
        ("num_samples", int, spec_field(-1, "use only the first N sentences (-1: all)", **COUNT_OR_ALL)),
    ]
    if training:
        fields.append(("shuffle", bool, spec_field(True, "shuffle every epoch (batches are formed from windows of similar length)")))
    fields.append(("num_workers", int, spec_field(0, "DataLoader worker processes (0: load in the main process)",
                                                  **WORKERS)))
    return make_dataclass(name, fields)


@dataclass
class WordOptimSpec(OptimSpec):
    """The optimizer of the word-level tasks: a higher peak rate, since their per-token heads start from
    scratch (NER on 2,000 CoNLL sentences x 1 epoch: entity F1 0.27 at 5e-5, 0.52 at 2e-4)."""

    lr: float = spec_field(2e-4, "peak learning rate", **LEARNING_RATE)
