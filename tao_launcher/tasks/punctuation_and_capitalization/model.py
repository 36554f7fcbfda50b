"""The punctuation and capitalization model: one encoder, two per-token heads, a weighted joint loss.

``PunctCapitModel`` is the network (archive, ONNX export with both heads, inference);
training.py trains it (kept apart so that inference never imports Lightning). The task's two
figures: punctuation macro F1 over the marks other than O and F1 of upper case (``punct_capit_f1``).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from tao_launcher.nlp.model import EncoderNet, mlp_head


class PunctCapitModel(EncoderNet):
    """(punct_logits, capit_logits), each (batch, sequence, labels), from one encoder pass."""

    output_names = ("punct_logits", "capit_logits")
    per_token_outputs = True

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__(encoder, model_config)
        hidden = encoder.config.hidden_size
        self.punct_head = mlp_head(hidden, len(model_config["punct_labels"]), model_config["punct_num_fc_layers"],
                                   model_config["punct_fc_dropout"])
        self.capit_head = mlp_head(hidden, len(model_config["capit_labels"]), model_config["capit_num_fc_layers"],
                                   model_config["capit_fc_dropout"])

    def artifacts(self) -> Dict[str, str]:
        return {"punct_label_ids.csv": "\n".join(self.model_config["punct_labels"]) + "\n",
                "capit_label_ids.csv": "\n".join(self.model_config["capit_labels"]) + "\n"}

    def output_dims(self) -> Dict[str, List[int]]:
        return {"punct_logits": [-1, -1, len(self.model_config["punct_labels"])],
                "capit_logits": [-1, -1, len(self.model_config["capit_labels"])]}

    def heads(self):
        return [("punct_logits", self.punct_head, self.model_config["punct_labels"]),
                ("capit_logits", self.capit_head, self.model_config["capit_labels"])]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden_states(input_ids, attention_mask)
        return self.punct_head(hidden), self.capit_head(hidden)


def punct_capit_f1(punct: Dict, capit: Dict, punct_labels: List[str]) -> Tuple[float, float]:
    """The task's two figures from classification reports: macro F1 of the marks, F1 of U."""
    marks = [name for name in punct_labels if name != "O"]
    return sum(punct[m]["f1"] for m in marks) / len(marks), capit["U"]["f1"]
