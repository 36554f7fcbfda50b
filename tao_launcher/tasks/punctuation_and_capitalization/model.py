"""The punctuation and capitalization model: one encoder, two per-token heads, a weighted joint loss.

``PunctCapitModel`` is the network (archive, ONNX export with both heads, inference);
``PunctCapitModule`` trains it. Validation: punctuation macro F1 over the marks other than O
(``val_punct_f1``) and F1 of upper case (``val_capit_f1``), on the words' first sub-tokens.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from tao_launcher.core.data import IGNORE_INDEX
from tao_launcher.core.metrics import classification_report, confusion_matrix
from tao_launcher.core.model import TaoModule
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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden_states(input_ids, attention_mask)
        return self.punct_head(hidden), self.capit_head(hidden)


def punct_capit_f1(punct: Dict, capit: Dict, punct_labels: List[str]) -> Tuple[float, float]:
    """The task's two figures from classification reports: macro F1 of the marks, F1 of U."""
    marks = [name for name in punct_labels if name != "O"]
    return sum(punct[m]["f1"] for m in marks) / len(marks), capit["U"]["f1"]


class PunctCapitModule(TaoModule):
    def __init__(self, net: PunctCapitModel, optim_spec=None, punct_loss_weight: float = 0.5):
        super().__init__(optim_spec)
        self.net = net
        self.punct_labels = net.model_config["punct_labels"]
        self.capit_labels = net.model_config["capit_labels"]
        self.weight = punct_loss_weight
        self.loss = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def _forward(self, batch):
        punct, capit = self.net(batch["input_ids"], batch["attention_mask"])
        loss = (self.weight * self.loss(punct.flatten(0, 1), batch["punct_labels"].flatten())
                + (1 - self.weight) * self.loss(capit.flatten(0, 1), batch["capit_labels"].flatten()))
        return punct, capit, loss

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        loss = self._forward(batch)[2]
        self.log_training(loss, batch)
        return loss

    def on_validation_epoch_start(self):
        self._punct = torch.zeros((len(self.punct_labels),) * 2, dtype=torch.long, device=self.device)
        self._capit = torch.zeros((len(self.capit_labels),) * 2, dtype=torch.long, device=self.device)

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        punct, capit, loss = self._forward(batch)
        self.log("val_loss", loss, sync_dist=True, batch_size=len(batch["input_ids"]))
        self._punct += confusion_matrix(punct.argmax(-1).flatten(), batch["punct_labels"].flatten(), len(self.punct_labels))
        self._capit += confusion_matrix(capit.argmax(-1).flatten(), batch["capit_labels"].flatten(), len(self.capit_labels))

    def on_validation_epoch_end(self):
        punct = classification_report(self.trainer.strategy.reduce(self._punct, reduce_op="sum").cpu(), self.punct_labels)
        capit = classification_report(self.trainer.strategy.reduce(self._capit, reduce_op="sum").cpu(), self.capit_labels)
        punct_f1, capit_f1 = punct_capit_f1(punct, capit, self.punct_labels)
        self.log("val_punct_f1", punct_f1, sync_dist=False)
        self.log("val_capit_f1", capit_f1, sync_dist=False)
        self.log("val_punct_acc", punct["accuracy"], sync_dist=False)
        self.log("val_capit_acc", capit["accuracy"], sync_dist=False)
