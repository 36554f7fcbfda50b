"""The token classifier (NER): a BERT-family encoder and an MLP that tags every token.

``TokenClassifier`` is the network (archive, ONNX export, inference); training.py trains it with
Lightning (kept apart so that inference never imports Lightning).
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from tao_launcher.nlp.model import EncoderNet, mlp_head


class TokenClassifier(EncoderNet):
    """logits (batch, sequence, tags) = head(encoder(input_ids, attention_mask))."""

    per_token_outputs = True

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__(encoder, model_config)
        self.head = mlp_head(encoder.config.hidden_size, len(model_config["label_names"]),
                             model_config["num_fc_layers"], model_config["fc_dropout"])

    def artifacts(self) -> Dict[str, str]:
        return {"label_ids.csv": "\n".join(self.model_config["label_names"]) + "\n"}

    def output_dims(self) -> Dict[str, List[int]]:
        return {"logits": [-1, -1, len(self.model_config["label_names"])]}

    def heads(self):
        return [("logits", self.head, self.model_config["label_names"])]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden_states(input_ids, attention_mask))
