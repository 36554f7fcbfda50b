"""The text classifier: a BERT-family encoder, a sentence vector (mean of tokens or [CLS]), an MLP head.

``TextClassifier`` is the network (what the archive, ONNX export and inference use);
training.py trains it with Lightning (kept apart so that inference never imports Lightning).
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from tao_launcher.nlp.model import EncoderNet, mlp_head, sentence_vector


class TextClassifier(EncoderNet):
    """logits = head(pool(encoder(input_ids, attention_mask)))."""

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__(encoder, model_config)
        self.pooling = model_config.get("pooling", "cls")
        self.head = mlp_head(encoder.config.hidden_size, model_config["num_classes"],
                             model_config["num_output_layers"], model_config["fc_dropout"])

    def artifacts(self) -> Dict[str, str]:
        return {"labels.txt": "\n".join(self.model_config["label_names"]) + "\n"}

    def output_dims(self) -> Dict[str, List[int]]:
        return {"logits": [-1, self.model_config["num_classes"]]}

    def heads(self):
        return [("logits", self.head, self.model_config["label_names"])]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(sentence_vector(self.hidden_states(input_ids, attention_mask), attention_mask, self.pooling))
