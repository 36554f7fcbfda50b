"""Training of the joint intent and slot model: its LightningModule (loss = w * intent loss + (1 - w) * slot
loss, NeMo's ``intent_loss_weight``) and the fit shared by train and finetune.

Validation, per window (an utterance longer than max_seq_length is several windows, each with its
intent): ``val_intent_acc`` and ``val_slot_f1`` (micro F1 over BIO slot spans, conlleval rules), with UNK
never predicted, so an UNK gold intent or slot counts as an error as in evaluate, and slot tags decoded as
evaluate decodes them (``nlp.bio``). The main metric, which picks the kept model (``trainer.monitor``), is
``val_slot_f1``. Only train and finetune import this module (and with it pytorch_lightning).
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
from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel, mask_unk
from tao_launcher.tasks.intent_slot_classification.subtasks import MAIN_METRIC, TASK, log, read


class IntentSlotModule(TaoModule):
    """The joint loss; validation: intent accuracy and slot span F1 (precision, recall)."""

    def __init__(self, net: IntentSlotModel, optim_spec, intent_loss_weight: float):
        super().__init__(optim_spec)
        self.net = net
        self.intent_labels = net.model_config["intent_labels"]
        self.slot_labels = net.model_config["slot_labels"]
        self.bio_decoding = net.model_config.get(bio.CONFIG_KEY, False)
        self.weight = intent_loss_weight
        self.loss = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def _forward(self, batch):
        intent, slots = self.net(batch["input_ids"], batch["attention_mask"])
        loss = (self.weight * self.loss(intent, batch["intent_labels"])
                + (1 - self.weight) * self.loss(slots.flatten(0, 1), batch["slot_labels"].flatten()))
        return intent, slots, loss

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        loss = self._forward(batch)[2]
        self.log_training(loss, batch)
        return loss

    def on_validation_epoch_start(self):
        self._counts = torch.zeros(5, dtype=torch.long, device=self.device)  # intents ok, windows, spans ok/pred/gold

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        intent, slots, loss = self._forward(batch)
        self.log("val_loss", loss, sync_dist=True, batch_size=len(batch["input_ids"]))
        intent_pred = mask_unk(intent, self.intent_labels).argmax(-1)
        gold = batch["slot_labels"].cpu()
        slot_pred = torch.from_numpy(bio.decode_labelled(mask_unk(slots, self.slot_labels).float().cpu().numpy(),
                                                         (gold != IGNORE_INDEX).numpy(), self.slot_labels,
                                                         self.bio_decoding))
        intents = torch.tensor([int((intent_pred == batch["intent_labels"]).sum()), len(intent_pred)])
        spans = span_counts(slot_pred, gold, self.slot_labels)
        self._counts += torch.cat([intents, spans]).to(self.device)

    def on_validation_epoch_end(self):
        ok, windows, correct, predicted, gold = self.trainer.strategy.reduce(self._counts, reduce_op="sum").tolist()
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        self.log("val_intent_acc", ok / windows if windows else 0.0, sync_dist=False, prog_bar=True)
        self.log(MAIN_METRIC, f1, sync_dist=False, prog_bar=True)  # prog_bar: on the epoch line
        self.log("val_slot_precision", precision, sync_dist=False)
        self.log("val_slot_recall", recall, sync_dist=False)


def fit(net: IntentSlotModel, tokenizer, train_ds, val_ds, weight: float, spec, run) -> Dict:
    """train's and finetune's one path: the data_dir files as word windows, then ``fit_and_save``."""
    config = net.model_config

    def examples(ds):
        words, intents, slots = read(spec.data_dir, ds, config)
        return words, slots, labelled_examples(tokenizer, words, {"slot_labels": slots}, config["max_seq_length"],
                                               sentence_labels={"intent_labels": intents})

    train_words, train_slots, train_examples = examples(train_ds)
    val_words, _, val_examples = examples(val_ds)
    names = config["slot_labels"]
    config[bio.CONFIG_KEY] = bio.choose(spec.model.bio_decoding, ([names[i] for i in s] for s in train_slots), names, log)
    log.info("training on %d utterances (%d windows) from %s.tsv, validating on %d utterances from %s.tsv; "
             "%d intents, %d slot tags", len(train_words), len(train_examples), train_ds.prefix, len(val_words),
             val_ds.prefix, len(config["intent_labels"]), len(config["slot_labels"]))
    datamodule = BucketedDataModule(
        train_examples, val_examples, pad_id=tokenizer.pad_token_id or 0, seed=spec.trainer.seed,
        train_batch_size=train_ds.batch_size, val_batch_size=val_ds.batch_size, shuffle=train_ds.shuffle,
        train_num_workers=train_ds.num_workers, val_num_workers=val_ds.num_workers)
    return fit_and_save(TASK, IntentSlotModule(net, spec.optim, weight), datamodule, tokenizer, spec, run,
                        main_metric=MAIN_METRIC)
