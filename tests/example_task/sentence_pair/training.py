"""The loss (cross-entropy) and the validation metric (accuracy): all this task adds to training."""

from __future__ import annotations

import torch

from tao_launcher.core.module import TaoModule
from tao_launcher.core.trainer import fit_task
from tao_launcher.nlp import model as nlp_model
from example_task.sentence_pair.data import encode


class PairModule(TaoModule):
    def __init__(self, net, optim_spec):
        super().__init__(optim_spec)
        self.net = net

    def _logits(self, batch):
        return self.net(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])

    def training_loss(self, batch):
        return torch.nn.functional.cross_entropy(self._logits(batch), batch["labels"])

    def validation_step(self, batch, batch_idx):
        correct = (self._logits(batch).argmax(-1) == batch["labels"]).float().mean()
        self.log("val_acc", correct, prog_bar=True, sync_dist=True, batch_size=len(batch["labels"]))


def fit(net, tokenizer, train, val, train_ds, val_ds, spec, run):
    def examples(pairs_and_labels):
        pairs, labels = pairs_and_labels
        return [{**e, "labels": y} for e, y in zip(encode(tokenizer, pairs), labels)]

    return fit_task("sentence_pair", PairModule(net, spec.optim), examples(train), examples(val), train_ds, val_ds,
                    spec, run, family=nlp_model, processor=tokenizer, main_metric="val_acc",
                    pad_id=tokenizer.pad_token_id or 0)
