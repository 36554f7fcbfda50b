"""Training of the punctuation and capitalization model: its LightningModule (NeMo's weighted joint loss;
validation F1 on the words' first sub-tokens) and the fit shared by train and finetune.

Only train and finetune import this module (and with it pytorch_lightning).
"""

from __future__ import annotations

from typing import Dict

import torch

from tao_launcher.core.metrics import classification_report, confusion_matrix
from tao_launcher.core.module import TwoHeadModule
from tao_launcher.core.trainer import fit_task
from tao_launcher.nlp import model as nlp_model
from tao_launcher.nlp.tokens import labelled_examples
from tao_launcher.tasks.punctuation_and_capitalization import data
from tao_launcher.tasks.punctuation_and_capitalization.model import PunctCapitModel, punct_capit_f1


class PunctCapitModule(TwoHeadModule):
    def __init__(self, net: PunctCapitModel, optim_spec=None, punct_loss_weight: float = 0.5):
        super().__init__(net, optim_spec, punct_loss_weight)
        self.punct_labels = net.model_config["punct_labels"]
        self.capit_labels = net.model_config["capit_labels"]

    def on_validation_epoch_start(self):
        self._punct = torch.zeros((len(self.punct_labels),) * 2, dtype=torch.long, device=self.device)
        self._capit = torch.zeros((len(self.capit_labels),) * 2, dtype=torch.long, device=self.device)

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        punct, capit, loss = self.forward_with_loss(batch)
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
    """train's and finetune's one path: the data_dir files as word windows, then ``fit_task``."""
    config = net.model_config
    index = {head: {name: i for i, name in enumerate(config[f"{head}_labels"])} for head in ("punct", "capit")}
    trained = f"the model in {run.model}" if run.model else None  # finetune: its labels are the archive's

    def examples(ds):
        words, punct, capit = data.read_split(spec.data_dir, ds, config, trained, spec.trainer.seed)
        labels = {"punct_labels": [[index["punct"][p] for p in s] for s in punct],
                  "capit_labels": [[index["capit"][c] for c in s] for s in capit]}
        return words, labelled_examples(tokenizer, words, labels, config["max_seq_length"])

    train_words, train_examples = examples(train_ds)
    val_words, val_examples = examples(val_ds)
    data.log.info("training on %d lines (%d words, %d windows), validating on %d lines (%d windows)",
                  len(train_words), sum(map(len, train_words)), len(train_examples), len(val_words), len(val_examples))
    return fit_task(data.TASK, PunctCapitModule(net, spec.optim, weight), train_examples, val_examples, train_ds,
                    val_ds, spec, run, family=nlp_model, processor=tokenizer, main_metric="val_punct_f1",
                    pad_id=tokenizer.pad_token_id or 0)
