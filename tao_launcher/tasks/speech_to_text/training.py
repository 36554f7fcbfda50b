"""Training of the CTC acoustic model: its LightningModule and the fit shared by train and finetune.

The loss is CTC with NeMo's ``mean_batch`` reduction (each utterance's negative log-likelihood, averaged
over the batch). Validation decodes greedily and logs ``val_wer`` (the main metric: the kept model is the
one with the lowest, unless ``trainer.monitor`` says otherwise) and ``val_cer``, both summed over the
whole validation set as NeMo does. Features are computed once per run (asr/dataset.py); SpecAugment runs
on each training batch. Only train and finetune import this module (and with it pytorch_lightning).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from tao_launcher.asr.ctc import error_counts, greedy_decode
from tao_launcher.asr.encoder import MaskedConv1d
from tao_launcher.core.module import TaoModule
from tao_launcher.core.trainer import fit_task
from tao_launcher.errors import DataError
from tao_launcher.tasks.speech_to_text import model as speech_model
from tao_launcher.tasks.speech_to_text.data import TASK, log, read_utterances
from tao_launcher.tasks.speech_to_text.model import SpeechToTextNet

MAIN_METRIC = "val_wer"  # lower is better: picks the kept model unless trainer.monitor says otherwise


class SpeechToTextModule(TaoModule):
    def __init__(self, net: SpeechToTextNet, vocabulary, optim_spec=None):
        super().__init__(optim_spec)
        self.net = net
        self.vocabulary = vocabulary
        self.ctc = nn.CTCLoss(blank=net.blank, reduction="sum", zero_infinity=True)
        for module in net.modules():  # validation every epoch: the faster banded depthwise convs
            if isinstance(module, MaskedConv1d):
                module.banded_eval = True

    def _loss(self, batch, augment: bool):
        features = batch["features"]
        if augment:
            features = self.net.spec_augment(features, batch["feature_lengths"])
        logprobs, lengths = self.net(features, batch["feature_lengths"])
        loss = self.ctc(logprobs.transpose(0, 1).float(), batch["targets"], lengths, batch["target_lengths"])
        return loss / len(features), logprobs, lengths

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(batch, augment=True)[0]

    def on_validation_epoch_start(self):
        self._counts = torch.zeros(4, dtype=torch.long, device=self.device)  # word errors, words, char errors, chars

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int):
        loss, logprobs, lengths = self._loss(batch, augment=False)
        self.log("val_loss", loss, sync_dist=True, batch_size=len(batch["features"]))
        hypotheses = [self.vocabulary.decode(ids) for ids in
                      greedy_decode(logprobs.detach().cpu(), lengths.cpu(), self.net.blank)]
        references = [self.vocabulary.decode(t[:n].tolist())
                      for t, n in zip(batch["targets"].cpu(), batch["target_lengths"].cpu())]
        counts = error_counts(hypotheses, references) + error_counts(hypotheses, references, use_cer=True)
        self._counts += torch.tensor(counts, device=self.device)

    def on_validation_epoch_end(self):
        word_errors, words, char_errors, chars = self.trainer.strategy.reduce(self._counts, reduce_op="sum").tolist()
        self.log(MAIN_METRIC, word_errors / words if words else 1.0, sync_dist=False, prog_bar=True)
        self.log("val_cer", char_errors / chars if chars else 1.0, sync_dist=False, prog_bar=True)


def examples(net: SpeechToTextNet, vocabulary, utterances: Sequence, training: bool, what: str,
             speeds: Sequence[float] = (), max_duration: float = float("inf")) -> List[Dict]:
    """Cached features and token ids of the utterances, and of their copies at each of ``speeds``
    (training_ds.speed_perturb); one whose transcript has no token of the vocabulary, or that is too short for
    its transcript under CTC, is left out and counted."""
    from tao_launcher.asr.audio import change_speed, load_audio
    from tao_launcher.asr.dataset import featurize, speed_copies
    from tao_launcher.asr.blocks import total_stride

    rate = net.model_config["sample_rate"]
    net.preprocessor.train(training)  # dither on the training audio only
    clips = speed_copies(utterances, speeds, max_duration)
    features = featurize(net.preprocessor,
                         lambda c: change_speed(load_audio(c.utterance.audio_filepath, rate), rate, c.speed), clips,
                         desc=f"{what} features")
    stride = total_stride(net.model_config["blocks"])
    out, unusable, unknown = [], 0, set()
    for c, f in zip(clips, features):
        targets = vocabulary.encode(c.utterance.text)
        unknown |= vocabulary.unknown(c.utterance.text)
        if not targets or len(targets) > (f.shape[1] + stride - 1) // stride:
            unusable += 1
            continue
        out.append({"features": f, "targets": targets, "duration": c.duration})
    if unknown:
        log.warning("%s transcripts hold characters outside model.labels, left out of the targets: %s (normalise "
                    "them with dataset_convert dataset_name=manifest)", what, " ".join(sorted(repr(c) for c in unknown)))
    if unusable:
        log.warning("left out %d %s utterance(s): no transcript token in the vocabulary, or more tokens than the "
                    "model's output frames", unusable, what)
    if not out:
        raise DataError(f"none of the {len(utterances)} {what} utterances can be used: check that the transcripts "
                        f"use the model's vocabulary")
    return out


def fit(net: SpeechToTextNet, vocabulary, train_utterances: Sequence, train_ds, val_ds, spec, run) -> Dict:
    """train's and finetune's one path: features once, then ``fit_task``."""
    from tao_launcher.asr.dataset import collate_utterances, extra_speeds

    val_utterances = read_utterances(val_ds, seed=spec.trainer.seed)
    train_examples = examples(net, vocabulary, train_utterances, True, "training", speeds=train_ds.speed_perturb,
                              max_duration=train_ds.max_duration)
    val_examples = examples(net, vocabulary, val_utterances, False, "validation")
    hours = sum(e["duration"] for e in train_examples) / 3600
    speeds = extra_speeds(train_ds.speed_perturb)
    copies = f" (with their copies at speeds {', '.join(f'{s:g}' for s in speeds)})" if speeds else ""
    log.info("training on %d utterances%s (%.2f h) from %s, validating on %d from %s", len(train_examples), copies,
             hours, train_ds.manifest_filepath, len(val_examples), val_ds.manifest_filepath)
    # random training batches, not length buckets: the encoder's batch norm would learn the statistics of batches
    # of similar-length (on FSDD: same-digit) clips; FSDD, 20 epochs: test WER 0.27 bucketed, 0.14 random
    return fit_task(TASK, SpeechToTextModule(net, vocabulary, spec.optim), train_examples, val_examples, train_ds,
                    val_ds, spec, run, family=speech_model, processor=vocabulary, main_metric=MAIN_METRIC,
                    main_metric_mode="min", collate=collate_utterances, length=lambda e: e["features"].shape[1],
                    train_bucketing=False)
