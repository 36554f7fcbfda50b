"""The punctuation and capitalization model: one encoder, two per-token heads.

``PunctCapitModel`` is the network (archive, ONNX export with both heads, inference);
training.py trains it (kept apart so that inference never imports Lightning). The task's two
figures, for validation and evaluate: punctuation macro F1 over the marks other than O and F1
of upper case (``punct_capit_f1``).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch

from tao_launcher.nlp.model import Head, TwoHeadNet


class PunctCapitModel(TwoHeadNet):
    """(punct_logits, capit_logits), each (batch, sequence, labels), from one encoder pass."""

    two_heads = (Head("punct", "punct_label_ids.csv"), Head("capit", "capit_label_ids.csv"))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden_states(input_ids, attention_mask)
        return self.punct_head(hidden), self.capit_head(hidden)


def punct_capit_f1(punct: Dict, capit: Dict, punct_labels: List[str]) -> Tuple[float, float]:
    """The task's two figures from classification reports: macro F1 of the marks, F1 of U."""
    marks = [name for name in punct_labels if name != "O"]
    return sum(punct[m]["f1"] for m in marks) / len(marks), capit["U"]["f1"]
