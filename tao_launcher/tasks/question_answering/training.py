"""Training of the QA network: its LightningModule and the fit shared by train and finetune.

Loss: the mean of the start and the end cross-entropy over the positions an answer can take ([CLS], "no
answer", and the window's context tokens; NeMo and Hugging Face also put the question, separators and, for
HF, the padding in the softmax, which only teaches the head what decoding never picks).
Validation decodes every question of the validation file from all its windows (nlp/span_decoding.py) and
scores it with the official SQuAD rules (nlp/squad_scoring.py): ``val_exact_match`` and ``val_f1`` in percent;
the main metric is ``val_f1``. Only train and finetune import this module (and with it pytorch_lightning).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from tao_launcher.core.module import TaoModule
from tao_launcher.core.trainer import fit_task
from tao_launcher.errors import DataError
from tao_launcher.nlp import model as nlp_model
from tao_launcher.nlp.qa_windows import NO_ANSWER, Question, Window, windows_of
from tao_launcher.nlp.span_decoding import decode_all, decoding_settings
from tao_launcher.nlp.squad_scoring import squad_scores
from tao_launcher.tasks.question_answering.data import TASK, log
from tao_launcher.tasks.question_answering.model import QuestionAnsweringNet

MAIN_METRIC = "val_f1"


def answer_positions(batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    """(batch, sequence) bool: where an answer may start or end, the positions span_decoding.py considers: [CLS]
    (no answer) and the window's context tokens. The question, the separators and the padding are left
    out of the softmax."""
    positions = torch.arange(batch["input_ids"].shape[1], device=batch["input_ids"].device)
    inside = ((positions >= batch["context_start"].unsqueeze(1)) & (positions < batch["context_end"].unsqueeze(1)))
    return inside | (positions == NO_ANSWER)


class QuestionAnsweringModule(TaoModule):
    """Start/end cross-entropy; validation: SQuAD exact match and F1 (percent) over the validation questions."""

    def __init__(self, net: QuestionAnsweringNet, optim_spec, val_questions: Sequence[Question],
                 val_windows: Sequence[Window], decoding):
        super().__init__(optim_spec)
        self.net = net
        self.val_questions, self.val_windows = list(val_questions), list(val_windows)
        self.decoding = decoding_settings(decoding, net.model_config["version_2_with_negative"])
        self._outputs: Dict[int, np.ndarray] = {}

    def _logits_loss(self, batch):
        logits = self.net(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        masked = logits.masked_fill(~answer_positions(batch).unsqueeze(-1), torch.finfo(logits.dtype).min)
        loss = (nn.functional.cross_entropy(masked[..., 0], batch["start_positions"]) +
                nn.functional.cross_entropy(masked[..., 1], batch["end_positions"])) / 2
        return logits, loss

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self._logits_loss(batch)[1]

    def on_validation_epoch_start(self):
        self._outputs = {}

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        logits, loss = self._logits_loss(batch)
        self.log("val_loss", loss, sync_dist=True, batch_size=len(batch["input_ids"]))
        lengths = batch["attention_mask"].sum(1).tolist()
        rows = logits.detach().float().cpu().numpy()
        for row, window, n in zip(rows, batch["window"].tolist(), lengths):
            self._outputs[window] = row[:n]

    def on_validation_epoch_end(self):
        outputs = self._outputs
        if torch.distributed.is_available() and torch.distributed.is_initialized() and self.trainer.world_size > 1:
            parts: List[Dict[int, np.ndarray]] = [None] * self.trainer.world_size  # type: ignore[list-item]
            torch.distributed.all_gather_object(parts, outputs)  # a question's windows may sit on several ranks
            outputs = {k: v for part in parts for k, v in part.items()}
        if len(outputs) < len(self.val_windows):
            return  # not every window was validated (limit_val_batches): no score rather than a wrong one
        predictions = decode_all([outputs[k] for k in range(len(self.val_windows))], self.val_windows,
                                 [q.context for q in self.val_questions], **self.decoding)
        scores = squad_scores({q.id: q.answer_texts for q in self.val_questions},
                              {q.id: p.answer for q, p in zip(self.val_questions, predictions)})
        self.log("val_exact_match", scores["exact"], sync_dist=False, prog_bar=True)  # prog_bar: the epoch line
        self.log(MAIN_METRIC, scores["f1"], sync_dist=False, prog_bar=True)
        for part in ("HasAns", "NoAns"):
            if f"{part}_f1" in scores:
                self.log(f"val_{part}_f1", scores[f"{part}_f1"], sync_dist=False)


def usable(questions: List[Question], config: Dict, file: str) -> List[Question]:
    """The questions a model learns from: a SQuAD v1.1 model leaves the unanswerable ones out."""
    if config["version_2_with_negative"]:
        return questions
    answerable = [q for q in questions if q.answerable]
    if len(answerable) < len(questions):
        log.warning("left out %d unanswerable questions of %s: the model is SQuAD v1.1 "
                    "(model.dataset.version_2_with_negative=false)", len(questions) - len(answerable), file)
    if not answerable:
        raise DataError(f"{file} has no answerable question, and a SQuAD v1.1 model "
                        f"(version_2_with_negative=false) learns only from those: give SQuAD data with answers")
    return answerable


def fit(net: QuestionAnsweringNet, tokenizer, files: Tuple[List[Question], List[Question]], train_ds, val_ds, spec,
        run) -> Dict:
    """train's and finetune's one path: the questions of the two files (read before the model, so a bad file
    fails at once) as windows, then ``fit_task``."""
    config = net.model_config
    train_questions = usable(files[0], config, train_ds.file)
    val_questions = usable(files[1], config, val_ds.file)
    train_windows = windows_of(tokenizer, train_questions, config)
    val_windows = windows_of(tokenizer, val_questions, config)
    log.info("training on %d questions (%d windows) from %s, validating on %d questions (%d windows) from %s",
             len(train_questions), len(train_windows), train_ds.file, len(val_questions), len(val_windows),
             val_ds.file)
    # the counts behind train_samples_per_sec (windows a second): questions a second = that * questions / windows
    run.results.record({"train_questions": len(train_questions), "train_windows": len(train_windows)})
    module = QuestionAnsweringModule(net, spec.optim, val_questions, val_windows, spec.decoding)
    return fit_task(TASK, module, [w.example(k) for k, w in enumerate(train_windows)],
                    [w.example(k) for k, w in enumerate(val_windows)], train_ds, val_ds, spec, run, family=nlp_model,
                    processor=tokenizer, main_metric=MAIN_METRIC, pad_id=tokenizer.pad_token_id or 0)
