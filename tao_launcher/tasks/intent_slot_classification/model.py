"""The joint intent and slot model: one encoder, an intent head on the sentence vector and a slot head on
every token (read at each word's first sub-token), trained with one weighted loss (training.py).

``IntentSlotModel`` is the network (archive, ONNX export with both heads, inference); training.py trains it
with Lightning (kept apart so that inference never imports Lightning).
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from tao_launcher.nlp.model import Head, TwoHeadNet, sentence_vector
from tao_launcher.tasks.intent_slot_classification.data import UNK


class IntentSlotModel(TwoHeadNet):
    """(intent_logits (batch, intents), slot_logits (batch, sequence, slots)) from one encoder pass."""

    two_heads = (Head("intent", "dict.intents.csv", per_token=False), Head("slot", "dict.slots.csv"))

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__(encoder, model_config)
        self.pooling = model_config["pooling"]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden_states(input_ids, attention_mask)
        return self.intent_head(sentence_vector(hidden, attention_mask, self.pooling)), self.slot_head(hidden)


def mask_unk(logits, labels: Sequence[str]):
    """Logits (numpy or torch, classes last) with UNK (dataset_convert's id of labels unseen in training) made
    impossible: a model never predicts UNK."""
    if UNK not in labels:
        return logits
    logits = logits.copy() if isinstance(logits, np.ndarray) else logits.clone()
    logits[..., labels.index(UNK)] = -1e9
    return logits
