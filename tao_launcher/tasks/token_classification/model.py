"""The token classifier (NER): a BERT-family encoder and an MLP that tags every token.

``TokenClassifier`` is the network (archive, ONNX export, inference); ``TokenClassificationModule``
trains it with Lightning. Validation scores entity F1 by the conlleval rules on the words of each
window (labels sit on first sub-tokens; the others carry IGNORE_INDEX and are skipped).
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from tao_launcher.core.data import IGNORE_INDEX
from tao_launcher.core.metrics import extract_spans
from tao_launcher.core.model import TaoModule
from tao_launcher.nlp.model import EncoderNet, mlp_head


class TokenClassifier(EncoderNet):
    """logits (batch, sequence, tags) = head(encoder(input_ids, attention_mask))."""

    per_token_outputs = True

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__(encoder, model_config)
        self.head = mlp_head(encoder.config.hidden_size, len(model_config["label_names"]),
                             model_config["num_fc_layers"], model_config["fc_dropout"])

    def artifacts(self) -> Dict[str, str]:
        return {"label_ids.csv": "\n".join(self.model_config["label_names"]) + "\n"}

    def output_dims(self) -> Dict[str, List[int]]:
        return {"logits": [-1, -1, len(self.model_config["label_names"])]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden_states(input_ids, attention_mask))


def span_counts(pred: torch.Tensor, gold: torch.Tensor, label_names: List[str]) -> torch.Tensor:
    """[correct, predicted, gold] entity counts of a batch, over its labelled positions, row by row."""
    counts = torch.zeros(3, dtype=torch.long)
    for p_row, g_row in zip(pred.tolist(), gold.tolist()):
        keep = [i for i, g in enumerate(g_row) if g != IGNORE_INDEX]
        p_spans = set(extract_spans([label_names[p_row[i]] for i in keep]))
        g_spans = set(extract_spans([label_names[g_row[i]] for i in keep]))
        counts += torch.tensor([len(p_spans & g_spans), len(p_spans), len(g_spans)])
    return counts


class TokenClassificationModule(TaoModule):
    """Cross-entropy on first sub-tokens; validation: micro entity F1 (val_f1), precision, recall, token accuracy."""

    def __init__(self, net: TokenClassifier, optim_spec=None):
        super().__init__(optim_spec)
        self.net = net
        self.label_names = net.model_config["label_names"]
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
        pred, gold = logits.argmax(-1), batch["labels"]
        labelled = gold != IGNORE_INDEX
        tokens = torch.tensor([int(((pred == gold) & labelled).sum()), int(labelled.sum())])
        self._counts += torch.cat([span_counts(pred.cpu(), gold.cpu(), self.label_names), tokens]).to(self.device)

    def on_validation_epoch_end(self):
        correct, predicted, gold, ok, tokens = self.trainer.strategy.reduce(self._counts, reduce_op="sum").tolist()
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        self.log("val_f1", f1, sync_dist=False)
        self.log("val_precision", precision, sync_dist=False)
        self.log("val_recall", recall, sync_dist=False)
        self.log("val_token_acc", ok / tokens if tokens else 0.0, sync_dist=False)
