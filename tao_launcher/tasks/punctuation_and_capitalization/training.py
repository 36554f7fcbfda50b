"""Training of the punctuation and capitalization model: its LightningModule (a weighted joint loss;
validation F1 on the words' first sub-tokens) and the fit shared by train and finetune.

Only train and finetune import this module (and with it pytorch_lightning).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from tao_launcher.core.data import IGNORE_INDEX
from tao_launcher.core.metrics import classification_report, confusion_matrix
from tao_launcher.core.module import BucketedDataModule, TaoModule
from tao_launcher.nlp.subtasks import fit_and_save
from tao_launcher.nlp.tokens import labelled_examples
from tao_launcher.tasks.punctuation_and_capitalization.model import PunctCapitModel, punct_capit_f1
from tao_launcher.tasks.punctuation_and_capitalization.subtasks import TASK, log, read


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
        self.log("val_punct_f1", punct_f1, sync_dist=False, prog_bar=True)  # prog_bar: on the epoch line
        self.log("val_capit_f1", capit_f1, sync_dist=False, prog_bar=True)
        self.log("val_punct_acc", punct["accuracy"], sync_dist=False)
        self.log("val_capit_acc", capit["accuracy"], sync_dist=False)


def fit(net: PunctCapitModel, tokenizer, train_ds, val_ds, weight: float, spec, run) -> Dict:
    """train's and finetune's one path: the data_dir files as word windows, then ``fit_and_save``."""
    config = net.model_config
    punct_index = {name: i for i, name in enumerate(config["punct_labels"])}
    capit_index = {name: i for i, name in enumerate(config["capit_labels"])}

    def examples(ds):
        words, punct, capit = read(spec.data_dir, ds, config, run.model)
        labels = {"punct_labels": [[punct_index[p] for p in s] for s in punct],
                  "capit_labels": [[capit_index[c] for c in s] for s in capit]}
        return words, labelled_examples(tokenizer, words, labels, config["max_seq_length"])

    train_words, train_examples = examples(train_ds)
    val_words, val_examples = examples(val_ds)
    log.info("training on %d lines (%d words, %d windows), validating on %d lines (%d windows)",
             len(train_words), sum(map(len, train_words)), len(train_examples), len(val_words), len(val_examples))
    datamodule = BucketedDataModule(
        train_examples, val_examples, pad_id=tokenizer.pad_token_id or 0, seed=spec.trainer.seed,
        train_batch_size=train_ds.batch_size, val_batch_size=val_ds.batch_size, shuffle=train_ds.shuffle,
        train_num_workers=train_ds.num_workers, val_num_workers=val_ds.num_workers)
    module = PunctCapitModule(net, spec.optim, weight)
    return fit_and_save(TASK, module, datamodule, tokenizer, spec, run, main_metric="val_punct_f1")
