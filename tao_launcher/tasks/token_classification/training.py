"""Training of the token classifier: its LightningModule and the fit shared by train and finetune.

Validation scores entity F1 by the conlleval rules on the words of each window (labels sit on
first sub-tokens; the others carry IGNORE_INDEX and are skipped), with tags decoded as evaluate decodes
them (``nlp.bio``). Only train and finetune import
this module (and with it pytorch_lightning).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from tao_launcher.core.data import IGNORE_INDEX
from tao_launcher.core.metrics import span_counts
from tao_launcher.core.module import BucketedDataModule, TaoModule
from tao_launcher.nlp import bio
from tao_launcher.nlp.subtasks import fit_and_save
from tao_launcher.nlp.tokens import labelled_examples
from tao_launcher.tasks.token_classification.model import TokenClassifier
from tao_launcher.tasks.token_classification.subtasks import TASK, log, read


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

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        _, loss = self._logits_loss(batch)
        self.log_training(loss, batch)
        return loss

    def on_validation_epoch_start(self):
        self._counts = torch.zeros(5, dtype=torch.long, device=self.device)  # correct, predicted, gold, tokens ok, tokens

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        logits, loss = self._logits_loss(batch)
        self.log("val_loss", loss, sync_dist=True, batch_size=len(batch["input_ids"]))
        gold = batch["labels"].cpu()
        labelled = gold != IGNORE_INDEX
        pred = torch.from_numpy(bio.decode_labelled(logits.float().cpu().numpy(), labelled.numpy(), self.label_names,
                                                    self.bio_decoding))
        tokens = torch.tensor([int(((pred == gold) & labelled).sum()), int(labelled.sum())])
        self._counts += torch.cat([span_counts(pred, gold, self.label_names), tokens]).to(self.device)

    def on_validation_epoch_end(self):
        correct, predicted, gold, ok, tokens = self.trainer.strategy.reduce(self._counts, reduce_op="sum").tolist()
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        self.log("val_f1", f1, sync_dist=False, prog_bar=True)  # prog_bar: on the epoch line
        self.log("val_precision", precision, sync_dist=False, prog_bar=True)
        self.log("val_recall", recall, sync_dist=False, prog_bar=True)
        self.log("val_token_acc", ok / tokens if tokens else 0.0, sync_dist=False)


def fit(net: TokenClassifier, tokenizer, train_ds, val_ds, spec, run) -> Dict:
    """train's and finetune's one path: the data_dir files as word windows, then ``fit_and_save``."""
    labels = net.model_config["label_names"]
    index = {name: i for i, name in enumerate(labels)}
    max_len = net.model_config["max_seq_length"]

    def examples(ds):
        words, tags = read(spec.data_dir, ds, labels)
        return words, tags, labelled_examples(tokenizer, words, {"labels": [[index[t] for t in s] for s in tags]},
                                              max_len)

    train_words, train_tags, train_examples = examples(train_ds)
    val_words, _, val_examples = examples(val_ds)
    net.model_config[bio.CONFIG_KEY] = bio.choose(spec.model.bio_decoding, train_tags, labels, log)
    log.info("training on %d sentences (%d windows) from %s, validating on %d sentences (%d windows); %d tags",
             len(train_words), len(train_examples), train_ds.text_file, len(val_words), len(val_examples), len(labels))
    datamodule = BucketedDataModule(
        train_examples, val_examples, pad_id=tokenizer.pad_token_id or 0, seed=spec.trainer.seed,
        train_batch_size=train_ds.batch_size, val_batch_size=val_ds.batch_size, shuffle=train_ds.shuffle,
        train_num_workers=train_ds.num_workers, val_num_workers=val_ds.num_workers)
    return fit_and_save(TASK, TokenClassificationModule(net, spec.optim), datamodule, tokenizer, spec, run,
                            main_metric="val_f1")
