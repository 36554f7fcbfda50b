"""The text classifier: a BERT-family encoder, a sentence vector (mean of tokens or [CLS]), an MLP head.

``TextClassifier`` is a plain ``nn.Module`` (what ONNX export and inference use);
``TextClassificationModule`` wraps it for training with Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from tao_launcher.core.metrics import classification_report, confusion_matrix
from tao_launcher.core.model import TaoModule


def load_encoder(source: Path | None = None, config=None) -> nn.Module:
    """An encoder without its pooler (unused: the head pools the hidden states itself), SDPA attention."""
    from transformers import AutoModel

    kwargs = {"attn_implementation": "sdpa"}
    for extra in ({"add_pooling_layer": False}, {}):
        try:
            if source is not None:
                return AutoModel.from_pretrained(str(source), **kwargs, **extra)
            return AutoModel.from_config(config, **kwargs, **extra)
        except TypeError:
            continue
    raise RuntimeError("unreachable")


class TextClassifier(nn.Module):
    """logits = head(pool(encoder(input_ids, attention_mask)))."""

    def __init__(self, encoder: nn.Module, num_classes: int, num_output_layers: int = 2, fc_dropout: float = 0.1,
                 pooling: str = "cls"):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        hidden = encoder.config.hidden_size
        layers: List[nn.Module] = []
        for _ in range(num_output_layers - 1):
            layers += [nn.Dropout(fc_dropout), nn.Linear(hidden, hidden), nn.ReLU()]
        layers += [nn.Dropout(fc_dropout), nn.Linear(hidden, num_classes)]
        self.head = nn.Sequential(*layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            sentence = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            sentence = hidden[:, 0]
        return self.head(sentence)


class TextClassificationModule(TaoModule):
    """Training, validation (accuracy, per-class P/R/F1) and the class-weighted loss."""

    def __init__(self, net: TextClassifier, label_names: List[str], optim_spec=None,
                 class_weights: Optional[torch.Tensor] = None):
        super().__init__(optim_spec)
        self.net = net
        self.label_names = label_names
        self.loss = nn.CrossEntropyLoss(weight=class_weights)
        self._confusion: Optional[torch.Tensor] = None
        self.make_loader = None  # (split, trainer) -> DataLoader, set by the subtask

    # loaders are built when Lightning asks, after DDP has given each process its rank
    def train_dataloader(self):
        return self.make_loader("train", self.trainer)

    def val_dataloader(self):
        return self.make_loader("validation", self.trainer)

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        logits = self.net(batch["input_ids"], batch["attention_mask"])
        loss = self.loss(logits, batch["labels"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=len(batch["labels"]))
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
