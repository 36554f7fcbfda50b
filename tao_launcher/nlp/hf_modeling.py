"""tao's NLP networks as Hugging Face classes: the ``modeling_tao.py`` of an ``export_format=HF`` folder.

``export`` copies this file, unchanged, into the folder and names its classes in ``config.json``
(``auto_map``), so that, without tao installed::

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)   # text_classification
    AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True)      # NER, punctuation

rebuild the network exactly as tao ran it: the encoder (no pooler), then each head on the mean of
the tokens or [CLS] (sentence heads) or on every token, each head NeMo's MLP (``nlp/model.py``
``mlp_head``: (n - 1) x [dropout, linear, relu], dropout, linear). It imports only torch and
transformers. Output: ``logits``, the first head's (tao's ONNX output of that name; punctuation:
the marks) and ``extra_logits``, the other heads' in ``config.tao_heads`` order (punctuation: case).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput


class TaoEncoderHeadsConfig(PretrainedConfig):
    """``encoder``: the encoder's own config (a dict with its model_type); ``tao_heads``: one
    ``{name, num_labels, num_layers, dropout, pooling}`` per head (pooling: mean, cls, or null per token);
    ``tao_task``: the tao task that trained it."""

    model_type = "tao_encoder_heads"

    def __init__(self, encoder: Optional[dict] = None, tao_heads: Optional[list] = None, tao_task: str = "", **kwargs):
        self.encoder = dict(encoder or {})
        self.tao_heads = list(tao_heads or [])
        self.tao_task = tao_task
        super().__init__(**kwargs)


def mlp(hidden: int, num_labels: int, num_layers: int, dropout: float) -> nn.Sequential:
    """NeMo's classifier head, module for module as tao builds it (the weights' names follow)."""
    layers = []
    for _ in range(num_layers - 1):
        layers += [nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU()]
    layers += [nn.Dropout(dropout), nn.Linear(hidden, num_labels)]
    return nn.Sequential(*layers)


@dataclass
class TaoModelOutput(ModelOutput):
    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    extra_logits: Optional[Tuple[torch.FloatTensor, ...]] = None


class TaoEncoderWithHeads(PreTrainedModel):
    config_class = TaoEncoderHeadsConfig
    base_model_prefix = "encoder"
    _supports_sdpa = True

    def __init__(self, config: TaoEncoderHeadsConfig):
        super().__init__(config)
        encoder_config = dict(config.encoder)
        encoder_config = AutoConfig.for_model(encoder_config.pop("model_type"), **encoder_config)
        try:
            self.encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
        except TypeError:  # encoders without a pooler
            self.encoder = AutoModel.from_config(encoder_config)
        hidden = encoder_config.hidden_size
        self.heads = nn.ModuleDict({h["name"]: mlp(hidden, h["num_labels"], h["num_layers"], h["dropout"])
                                    for h in config.tao_heads})
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if module.bias is not None:
                module.bias.data.zero_()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs).last_hidden_state
        outputs = []
        for head in self.config.tao_heads:
            x = hidden
            if head["pooling"] == "mean":
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                x = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            elif head["pooling"] == "cls":
                x = hidden[:, 0]
            outputs.append(self.heads[head["name"]](x))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(outputs[0].flatten(0, -2), labels.flatten())
        return TaoModelOutput(loss=loss, logits=outputs[0], extra_logits=tuple(outputs[1:]) or None)


class TaoForSequenceClassification(TaoEncoderWithHeads):
    """One sentence head (text_classification)."""


class TaoForTokenClassification(TaoEncoderWithHeads):
    """Per-token heads (token_classification; punctuation_and_capitalization's two)."""
