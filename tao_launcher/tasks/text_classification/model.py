"""The text classifier: a BERT-family encoder, a sentence vector (mean of tokens or [CLS]), an MLP head.

``TextClassifier`` is the network (what the archive, ONNX export and inference use);
``TextClassificationModule`` trains it with Lightning and provides the validation metrics.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from tao_launcher.core.metrics import classification_report, confusion_matrix
from tao_launcher.core.model import TaoModule
from tao_launcher.nlp.model import EncoderNet, mlp_head


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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_states(input_ids, attention_mask)
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            sentence = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            sentence = hidden[:, 0]
        return self.head(sentence)


class TextClassificationModule(TaoModule):
    """Training, validation (accuracy, per-class P/R/F1) and the class-weighted loss."""

    def __init__(self, net: TextClassifier, optim_spec=None, class_weights: Optional[torch.Tensor] = None):
        super().__init__(optim_spec)
        self.net = net
        self.label_names = net.model_config["label_names"]
        self.loss = nn.CrossEntropyLoss(weight=class_weights)
        self._confusion: Optional[torch.Tensor] = None

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        logits = self.net(batch["input_ids"], batch["attention_mask"])
        loss = self.loss(logits, batch["labels"])
        self.log_training(loss, batch)
        return loss

    def on_validation_epoch_start(self):
        n = len(self.label_names)
        self._confusion = torch.zeros((n, n), dtype=torch.long, device=self.device)

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        logits = self.net(batch["input_ids"], batch["attention_mask"])
        loss = nn.functional.cross_entropy(logits, batch["labels"])
        self.log("val_loss", loss, sync_dist=True, batch_size=len(batch["labels"]))
        self._confusion += confusion_matrix(logits.argmax(-1), batch["labels"], len(self.label_names))

    def on_validation_epoch_end(self):
        confusion = self.trainer.strategy.reduce(self._confusion, reduce_op="sum")
        report = classification_report(confusion.cpu(), self.label_names)
        self.log("val_acc", report["accuracy"], sync_dist=False)
        self.log("val_macro_f1", report["macro_f1"], sync_dist=False)
        for name in self.label_names:
            for metric in ("precision", "recall", "f1"):
                self.log(f"val_{metric}_{name}", report[name][metric], sync_dist=False)
        self.last_report = report
