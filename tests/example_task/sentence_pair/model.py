"""The head: an MLP on the [CLS] vector of the pair, two classes."""

from __future__ import annotations

from typing import Dict, List

from tao_launcher.nlp.model import EncoderNet, mlp_head, sentence_vector

LABELS = ["different", "same"]


class PairClassifier(EncoderNet):
    input_names = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, encoder, model_config: Dict):
        super().__init__(encoder, model_config)
        self.head = mlp_head(encoder.config.hidden_size, len(LABELS), num_layers=1, dropout=0.1)

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.hidden_states(input_ids, attention_mask, token_type_ids)
        return self.head(sentence_vector(hidden, attention_mask, "cls"))

    def output_dims(self) -> Dict[str, List[int]]:
        return {"logits": [-1, len(LABELS)]}
