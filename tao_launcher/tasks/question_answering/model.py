"""The extractive QA network: a BERT-family encoder and a start/end head on every token (NeMo's
TokenClassifier with two classes, Hugging Face's qa_outputs).

Output ``logits`` is (batch, sequence, 2): channel 0 the start logits, channel 1 the end logits, as
NeMo's exported QA model gives them. training.py trains it; nlp/span_decoding.py turns logits into
answers.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from tao_launcher.nlp.model import EncoderNet, mlp_head


class QuestionAnsweringNet(EncoderNet):
    """logits = head(encoder(input_ids, attention_mask, token_type_ids)): start and end logit per token."""

    input_names = ("input_ids", "attention_mask", "token_type_ids")
    output_names = ("logits",)
    per_token_outputs = True

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__(encoder, model_config)
        self.head = mlp_head(encoder.config.hidden_size, 2, model_config["num_layers"], model_config["dropout"])
        # NeMo's use_transformer_init (its QA default) and Hugging Face's qa_outputs: N(0, initializer_range), bias 0
        std = getattr(encoder.config, "initializer_range", 0.02)
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=std)
                nn.init.zeros_(layer.bias)

    def output_dims(self) -> Dict[str, List[int]]:
        return {"logits": [-1, -1, 2]}

    def heads(self) -> List[Tuple[str, nn.Sequential, List[str]]]:
        return [("logits", self.head, ["start", "end"])]

    def riva_settings(self) -> Dict[str, object]:
        c = self.model_config
        return {**super().riva_settings(), "doc_stride": c["doc_stride"], "max_query_length": c["max_query_length"],
                "version_2_with_negative": c["version_2_with_negative"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden_states(input_ids, attention_mask, token_type_ids))
