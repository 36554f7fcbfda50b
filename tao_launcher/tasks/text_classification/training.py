"""Training of the text classifier: its LightningModule and the fit shared by train and finetune.

Only train and finetune import this module (and with it pytorch_lightning).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Dict, Optional

import torch
from torch import nn

from tao_launcher.core.metrics import classification_report, confusion_matrix
from tao_launcher.core.module import TaoModule
from tao_launcher.core.trainer import fit_task
from tao_launcher.nlp import model as nlp_model
from tao_launcher.nlp.encoder import tokenize
from tao_launcher.tasks.text_classification import data
from tao_launcher.tasks.text_classification.model import TextClassifier

TASK = "text_classification"
log = logging.getLogger("tao.text_classification")


class TextClassificationModule(TaoModule):
    """Training, validation (accuracy, per-class P/R/F1) and the class-weighted loss."""

    def __init__(self, net: TextClassifier, optim_spec=None, class_weights: Optional[torch.Tensor] = None):
        super().__init__(optim_spec)
        self.net = net
        self.label_names = net.model_config["label_names"]
        self.loss = nn.CrossEntropyLoss(weight=class_weights)
        self._confusion: Optional[torch.Tensor] = None

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss(self.net(batch["input_ids"], batch["attention_mask"]), batch["labels"])

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
        self.log("val_acc", report["accuracy"], sync_dist=False, prog_bar=True)  # prog_bar: on the epoch line
        self.log("val_macro_f1", report["macro_f1"], sync_dist=False, prog_bar=True)
        for name in self.label_names:
            for metric in ("precision", "recall", "f1"):
                self.log(f"val_{metric}_{name}", report[name][metric], sync_dist=False)
        self.last_report = report


def fit(net: TextClassifier, tokenizer, train_ds, val_ds, spec, run, range_fix: str = data.LABEL_RANGE_FIX) -> Dict:
    """train's and finetune's one path: the two files as examples, then ``fit_task``."""
    config = net.model_config
    num_classes, max_len = config["num_classes"], config["max_seq_length"]
    seed = spec.trainer.seed
    train_x, train_y = data.read_examples(train_ds.file_path, train_ds.num_samples, num_classes, range_fix, seed)
    val_x, val_y = data.read_examples(val_ds.file_path, val_ds.num_samples, num_classes, range_fix, seed)
    log.info("training on %d sentences from %s, validating on %d from %s",
             len(train_x), train_ds.file_path, len(val_x), val_ds.file_path)
    weights = None
    if config.get("class_balancing") == "weighted_loss":
        counts = Counter(train_y)
        weights = torch.tensor([len(train_y) / (num_classes * max(1, counts[c])) for c in range(num_classes)],
                               dtype=torch.float)
        log.info("class weights for the loss: %s", [round(w, 3) for w in weights.tolist()])

    def examples(sentences, labels):
        return [{"input_ids": ids, "labels": y} for ids, y in zip(tokenize(tokenizer, sentences, max_len), labels)]

    return fit_task(TASK, TextClassificationModule(net, spec.optim, weights), examples(train_x, train_y),
                    examples(val_x, val_y), train_ds, val_ds, spec, run, family=nlp_model, processor=tokenizer,
                    main_metric="val_acc", pad_id=tokenizer.pad_token_id or 0)
