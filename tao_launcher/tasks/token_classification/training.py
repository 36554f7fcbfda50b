"""Training of the token classifier: its LightningModule and the fit shared by train and finetune.

Validation scores entity F1 by the conlleval rules on the words of each window (labels sit on
first sub-tokens; the others carry IGNORE_INDEX and are skipped), with tags decoded as evaluate decodes
them (``nlp.bio``). Only train and finetune import this module (and with it pytorch_lightning).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from tao_launcher.core.data import IGNORE_INDEX
from tao_launcher.core.metrics import precision_recall_f1
from tao_launcher.core.module import TaoModule
from tao_launcher.core.trainer import fit_task
from tao_launcher.nlp import bio
from tao_launcher.nlp import model as nlp_model
from tao_launcher.nlp.tokens import labelled_examples
from tao_launcher.tasks.token_classification import data
from tao_launcher.tasks.token_classification.data import TASK, log
from tao_launcher.tasks.token_classification.model import TokenClassifier


class TokenClassificationModule(TaoModule):
    """Cross-entropy on first sub-tokens; validation: micro entity F1 (val_f1), precision, recall, token accuracy."""

    def __init__(self, net: TokenClassifier, optim_spec=None):
        super().__init__(optim_spec)
        self.net = net
        self.label_names = net.model_config["label_names"]
        self.bio_decoding = net.model_config.get(bio.CONFIG_KEY, False)
        self.loss = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def _logits_loss(self, batch):
        logits = self.net(batch["input_ids"], batch["attention_mask"])
        return logits, self.loss(logits.flatten(0, 1), batch["labels"].flatten())

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self._logits_loss(batch)[1]

    def on_validation_epoch_start(self):
        self._counts = torch.zeros(5, dtype=torch.long, device=self.device)  # bio.validation_counts

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        logits, loss = self._logits_loss(batch)
        self.log("val_loss", loss, sync_dist=True, batch_size=len(batch["input_ids"]))
        self._counts += bio.validation_counts(logits, batch["labels"], self.label_names,
                                              self.bio_decoding).to(self.device)

    def on_validation_epoch_end(self):
        correct, predicted, gold, right, words = self.trainer.strategy.reduce(self._counts, reduce_op="sum").tolist()
        spans = precision_recall_f1(correct, gold, predicted)
        self.log("val_f1", spans["f1"], sync_dist=False, prog_bar=True)  # prog_bar: on the epoch line
        self.log("val_precision", spans["precision"], sync_dist=False, prog_bar=True)
        self.log("val_recall", spans["recall"], sync_dist=False, prog_bar=True)
        self.log("val_token_acc", right / words if words else 0.0, sync_dist=False)


def fit(net: TokenClassifier, tokenizer, train_ds, val_ds, spec, run) -> Dict:
    """train's and finetune's one path: the data_dir files as word windows, then ``fit_task``."""
    labels = net.model_config["label_names"]
    index = {name: i for i, name in enumerate(labels)}

    def examples(ds):
        words, tags = data.read(spec.data_dir, ds, labels, spec.trainer.seed)
        ids = {"labels": [[index[t] for t in s] for s in tags]}
        return words, tags, labelled_examples(tokenizer, words, ids, net.model_config["max_seq_length"])

    train_words, train_tags, train_examples = examples(train_ds)
    val_words, _, val_examples = examples(val_ds)
    net.model_config[bio.CONFIG_KEY] = bio.choose(spec.model.bio_decoding, train_tags, labels, log)
    log.info("training on %d sentences (%d windows) from %s, validating on %d sentences (%d windows); %d tags",
             len(train_words), len(train_examples), train_ds.text_file, len(val_words), len(val_examples), len(labels))
    return fit_task(TASK, TokenClassificationModule(net, spec.optim), train_examples, val_examples, train_ds, val_ds,
                    spec, run, family=nlp_model, processor=tokenizer, main_metric="val_f1",
                    pad_id=tokenizer.pad_token_id or 0)
