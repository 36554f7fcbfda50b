"""Training of the joint intent and slot model: its LightningModule (loss = w * intent loss + (1 - w) * slot
loss, NeMo's ``intent_loss_weight``: ``core.module.JointLoss``) and the fit shared by train and finetune.

Validation, per window (an utterance longer than max_seq_length is several windows, each with its
intent): ``val_intent_acc`` and ``val_slot_f1`` (micro F1 over BIO slot spans, conlleval rules), with UNK
never predicted, so an UNK gold intent or slot counts as an error as in evaluate, and slot tags decoded as
evaluate decodes them (``nlp.bio``). The main metric, which picks the kept model (``trainer.monitor``), is
``val_slot_f1``. Only train and finetune import this module (and with it pytorch_lightning).
"""

from __future__ import annotations

from typing import Dict

import torch

from tao_launcher.core.metrics import precision_recall_f1
from tao_launcher.core.module import TwoHeadModule
from tao_launcher.core.trainer import fit_task
from tao_launcher.nlp import bio
from tao_launcher.nlp import model as nlp_model
from tao_launcher.nlp.tokens import labelled_examples
from tao_launcher.tasks.intent_slot_classification import data
from tao_launcher.tasks.intent_slot_classification.data import TASK, log
from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel, mask_unk

MAIN_METRIC = "val_slot_f1"  # picks the kept model unless trainer.monitor says otherwise


class IntentSlotModule(TwoHeadModule):
    """The joint loss; validation: intent accuracy and slot span F1 (precision, recall)."""

    def __init__(self, net: IntentSlotModel, optim_spec, intent_loss_weight: float):
        super().__init__(net, optim_spec, intent_loss_weight)
        self.intent_labels = net.model_config["intent_labels"]
        self.slot_labels = net.model_config["slot_labels"]
        self.bio_decoding = net.model_config.get(bio.CONFIG_KEY, False)

    def on_validation_epoch_start(self):
        # intents right, windows, then bio.validation_counts of the slots
        self._counts = torch.zeros(7, dtype=torch.long, device=self.device)

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        intent, slots, loss = self.forward_with_loss(batch)
        self.log("val_loss", loss, sync_dist=True, batch_size=len(batch["input_ids"]))
        intent_pred = mask_unk(intent, self.intent_labels).argmax(-1)
        intents = torch.tensor([int((intent_pred == batch["intent_labels"]).sum()), len(intent_pred)])
        spans = bio.validation_counts(mask_unk(slots, self.slot_labels), batch["slot_labels"], self.slot_labels,
                                      self.bio_decoding)
        self._counts += torch.cat([intents, spans]).to(self.device)

    def on_validation_epoch_end(self):
        right, windows, correct, predicted, gold, _, _ = self.trainer.strategy.reduce(self._counts,
                                                                                      reduce_op="sum").tolist()
        spans = precision_recall_f1(correct, gold, predicted)
        self.log("val_intent_acc", right / windows if windows else 0.0, sync_dist=False, prog_bar=True)
        self.log(MAIN_METRIC, spans["f1"], sync_dist=False, prog_bar=True)  # prog_bar: on the epoch line
        self.log("val_slot_precision", spans["precision"], sync_dist=False)
        self.log("val_slot_recall", spans["recall"], sync_dist=False)


def fit(net: IntentSlotModel, tokenizer, train_ds, val_ds, weight: float, spec, run) -> Dict:
    """train's and finetune's one path: the data_dir files as word windows, then ``fit_task``."""
    config = net.model_config

    def examples(ds):
        words, intents, slots = data.read(spec.data_dir, ds, config, spec.trainer.seed)
        return words, slots, labelled_examples(tokenizer, words, {"slot_labels": slots}, config["max_seq_length"],
                                               sentence_labels={"intent_labels": intents})

    train_words, train_slots, train_examples = examples(train_ds)
    val_words, _, val_examples = examples(val_ds)
    names = config["slot_labels"]
    train_tags = ([names[i] for i in s] for s in train_slots)
    config[bio.CONFIG_KEY] = bio.choose(spec.model.bio_decoding, train_tags, names, log)
    log.info("training on %d utterances (%d windows) from %s.tsv, validating on %d utterances from %s.tsv; "
             "%d intents, %d slot tags", len(train_words), len(train_examples), train_ds.prefix, len(val_words),
             val_ds.prefix, len(config["intent_labels"]), len(config["slot_labels"]))
    return fit_task(TASK, IntentSlotModule(net, spec.optim, weight), train_examples, val_examples, train_ds, val_ds,
                    spec, run, family=nlp_model, processor=tokenizer, main_metric=MAIN_METRIC,
                    pad_id=tokenizer.pad_token_id or 0)
