"""The joint intent and slot model: one encoder, an intent head on the sentence vector and a slot head on
every token (read at each word's first sub-token), trained with one weighted loss (training.py).

``IntentSlotModel`` is the network (archive, ONNX export with both heads, inference); training.py trains it
with Lightning (kept apart so that inference never imports Lightning).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from tao_launcher.nlp.model import EncoderNet, mlp_head, sentence_vector

UNK = "UNK"


class IntentSlotModel(EncoderNet):
    """(intent_logits (batch, intents), slot_logits (batch, sequence, slots)) from one encoder pass."""

    output_names = ("intent_logits", "slot_logits")
    per_token_outputs = ("slot_logits",)

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__(encoder, model_config)
        hidden = encoder.config.hidden_size
        self.pooling = model_config["pooling"]
        self.intent_head = mlp_head(hidden, len(model_config["intent_labels"]), model_config["intent_num_fc_layers"],
                                    model_config["intent_fc_dropout"])
        self.slot_head = mlp_head(hidden, len(model_config["slot_labels"]), model_config["slot_num_fc_layers"],
                                  model_config["slot_fc_dropout"])

    def artifacts(self) -> Dict[str, str]:
        return {"dict.intents.csv": "\n".join(self.model_config["intent_labels"]) + "\n",
                "dict.slots.csv": "\n".join(self.model_config["slot_labels"]) + "\n"}

    def output_dims(self) -> Dict[str, List[int]]:
        return {"intent_logits": [-1, len(self.model_config["intent_labels"])],
                "slot_logits": [-1, -1, len(self.model_config["slot_labels"])]}

    def heads(self):
        return [("intent_logits", self.intent_head, self.model_config["intent_labels"]),
                ("slot_logits", self.slot_head, self.model_config["slot_labels"])]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden_states(input_ids, attention_mask)
        return self.intent_head(sentence_vector(hidden, attention_mask, self.pooling)), self.slot_head(hidden)


def unk_id(labels: Sequence[str]) -> Optional[int]:
    """The id of the UNK label (dataset_convert's id of labels unseen in training), or None."""
    return labels.index(UNK) if UNK in labels else None


def mask_unk(logits, labels: Sequence[str]):
    """Logits (numpy or torch, classes last) with UNK made impossible: a model never predicts UNK."""
    index = unk_id(labels)
    if index is None:
        return logits
    logits = logits.copy() if isinstance(logits, np.ndarray) else logits.clone()
    logits[..., index] = -1e9
    return logits
