"""speech_to_text subtasks, one typed function each: ``fn(spec, run) -> metrics``.

A CTC acoustic model on log-mel features (model.py): QuartzNet, Jasper or Citrinet block tables
(asr/encoder.py), characters or sentencepiece subwords (asr/vocabulary.py), greedy decoding, WER and CER
as NeMo computes them (asr/ctc.py). Manifests: asr/manifest.py; what train, evaluate and dataset_convert
read: data.py. evaluate, infer, infer_onnx and export are the shared predict path (core/predict.py) over
``predict`` below. torch is imported inside the subtasks that use it (dataset_convert needs none) and
Lightning only by train and finetune (tests/asr/test_speech_import_cost.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from tao_launcher.asr.manifest import Utterance
from tao_launcher.core.predict import Loaded, PredictStep, Scored
from tao_launcher.errors import DataError, UsageError
from tao_launcher.registry import RunContext
from tao_launcher.tasks.speech_to_text import data
from tao_launcher.tasks.speech_to_text.data import TASK, log
from tao_launcher.tasks.speech_to_text.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)


def _vocabulary(spec: TrainSpec, transcripts: Sequence[str], run: RunContext):
    """Characters (model.labels) for QuartzNet and Jasper; for Citrinet, model.tokenizer.dir's sentencepiece model
    or one trained now on the training transcripts (kept in <results>/tokenizer)."""
    from tao_launcher.asr.vocabulary import TOKENIZER_MODEL, CharVocabulary, SubwordVocabulary, train_subwords

    m = spec.model
    if not m.arch.startswith("citrinet") or m.encoder.jasper:
        return CharVocabulary(m.labels)
    if m.tokenizer.dir:
        model_file = Path(m.tokenizer.dir) / TOKENIZER_MODEL
        if not model_file.is_file():
            raise DataError(f"model.tokenizer.dir {m.tokenizer.dir} has no {TOKENIZER_MODEL}: point it at a folder "
                            f"with a sentencepiece model, or set it to null to train one")
        return SubwordVocabulary(model_file)
    log.info("training a %d-piece %s tokenizer on %d transcripts", m.tokenizer.vocab_size, m.tokenizer.type,
             len(transcripts))
    return train_subwords(transcripts, run.results.path / "tokenizer", m.tokenizer.vocab_size, m.tokenizer.type)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.asr.blocks import build_blocks
    from tao_launcher.asr.features import MelFeatures
    from tao_launcher.tasks.speech_to_text.model import SpeechToTextNet
    from tao_launcher.tasks.speech_to_text.training import fit

    m = spec.model
    train_utterances = data.read_utterances(spec.training_ds, training=True, seed=spec.trainer.seed)
    vocabulary = _vocabulary(spec, [u.text for u in train_utterances], run)
    blocks = build_blocks(m.arch, m.encoder.channel_scale, m.encoder.jasper or None, dropout=m.encoder.dropout)
    config = {"arch": m.arch if not m.encoder.jasper else "custom", "sample_rate": m.sample_rate,
              "preprocessor": MelFeatures(**vars(m.preprocessor), sample_rate=m.sample_rate).config(),
              "spec_augment": dict(vars(m.spec_augment)), "blocks": blocks, "activation": m.encoder.activation,
              "vocabulary": vocabulary.kind, "labels": vocabulary.labels, "num_classes": len(vocabulary) + 1}
    net = SpeechToTextNet(config)
    log.info("%s: %d blocks, %.2fM parameters, %d output classes (blank included)", config["arch"], len(blocks),
             sum(p.numel() for p in net.parameters()) / 1e6, config["num_classes"])
    return fit(net, vocabulary, train_utterances, spec.training_ds, spec.validation_ds, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    """Continue training the -m model on new data, with its features and vocabulary; SpecAugment from the spec."""
    from tao_launcher.asr.augment import SpecAugment
    from tao_launcher.tasks.speech_to_text.training import fit

    net, vocabulary, config = PREDICT.load_trained(run)
    config["spec_augment"] = dict(vars(spec.model.spec_augment))
    net.spec_augment = SpecAugment(**config["spec_augment"])
    return fit(net, vocabulary, data.read_utterances(spec.finetuning_ds, training=True, seed=spec.trainer.seed),
               spec.finetuning_ds, spec.validation_ds, spec, run)


# ----------------------------------------------------------------------------- predict step

@dataclass
class Transcripts:
    """``predict``'s answer: one transcript per utterance, in input order, and the seconds they took (audio
    reading and features included: what evaluate's real-time factor divides by the audio's length)."""

    texts: List[str]
    seconds: float


def predict(model: Loaded, utterances: Sequence[Utterance], batch_size: int, spec=None) -> Transcripts:
    """Greedy CTC transcripts of the utterances' audio through the model's runner (torch or onnxruntime: one
    path, so infer and infer_onnx agree). Features come from the model config's preprocessor, without dither,
    padded as training pads them."""
    from tao_launcher.asr.audio import load_audio
    from tao_launcher.asr.ctc import greedy_decode
    from tao_launcher.asr.dataset import featurize, pad_features
    from tao_launcher.asr.features import MelFeatures
    from tao_launcher.core.data import length_sorted_batches
    from tao_launcher.core.progress import track

    started = time.perf_counter()
    config = model.config
    preprocessor = MelFeatures.from_config(config["preprocessor"]).eval()
    features = featurize(preprocessor, lambda u: load_audio(u.audio_filepath, config["sample_rate"]), utterances)
    blank = config["num_classes"] - 1
    texts: List[str] = [""] * len(utterances)
    for batch in track(length_sorted_batches([f.shape[1] for f in features], batch_size), desc="transcribing",
                       unit="batch"):
        padded = pad_features([features[i] for i in batch])
        logprobs, encoded_lengths = model.runner({"audio_signal": padded["features"].numpy(),
                                                  "length": padded["feature_lengths"].numpy()})
        for i, ids in zip(batch, greedy_decode(logprobs, encoded_lengths, blank)):
            texts[i] = model.processor.decode(ids)
    return Transcripts(texts, time.perf_counter() - started)


def served_audio(columns: Dict[str, List]) -> List[Utterance]:
    """A served request's clips: each AUDIO item a whole audio file's bytes, read as infer reads a file
    (serving/triton_model.py); one that is not audio, or is empty, refuses the request by its number."""
    from tao_launcher.asr.audio import ClientAudio, read_audio

    items = columns.get("AUDIO", [])
    if not items:
        raise UsageError("the request has no AUDIO input: send a whole WAV or FLAC file's bytes per item")
    out = []
    for number, value in enumerate(items, 1):
        audio = ClientAudio(bytes(value), f"AUDIO item {number}")
        samples, rate = read_audio(audio)
        if not len(samples):
            raise UsageError(f"{audio} holds no samples: send a clip of speech")
        out.append(Utterance(audio, len(samples) / rate, "", number))
    return out


def read_inputs(spec: InferSpec) -> List[Utterance]:
    """infer's audio: ``input_manifest`` (its text ignored) when set, else ``file_paths``."""
    from tao_launcher.asr.audio import audio_info
    from tao_launcher.asr.manifest import read_manifest

    if spec.input_manifest:
        return read_manifest(spec.input_manifest, require_text=False)[0]
    if not spec.file_paths:
        raise UsageError("nothing to transcribe: set file_paths=[a.wav,b.wav] or input_manifest=<manifest.json>")
    return [Utterance(Path(p).absolute(), audio_info(p)[2], "", 0) for p in spec.file_paths]


def rows(utterances: Sequence[Utterance], transcripts: Transcripts, model: Loaded, run: RunContext) -> List[Dict]:
    return [{"audio_filepath": str(u.audio_filepath), "duration": round(u.duration, 3), "transcript": t}
            for u, t in zip(utterances, transcripts.texts)]


def line(row: Dict) -> str:
    return f"{row['audio_filepath']} ({row['duration']:.2f} s): {row['transcript'] or '(nothing recognised)'}"


def summary(utterances: List[Utterance], rows: List[Dict], seconds: float) -> Tuple[str, Dict]:
    """infer's closing line and metrics: how fast the audio was transcribed (seconds per second of audio)."""
    audio = sum(u.duration for u in utterances)
    rtf = seconds / audio if audio else 0.0
    return (f"{len(rows)} file(s), {audio:.1f} s of audio in {seconds:.2f} s: real-time factor {rtf:.3f}",
            {"audio_seconds": round(audio, 3), "real_time_factor": round(rtf, 4)})


def read_labelled(spec: EvaluateSpec, model: Loaded) -> Tuple[List[Utterance], List[str]]:
    utterances = data.read_utterances(spec.test_ds)
    return utterances, [u.text for u in utterances]


def score(utterances: Sequence[Utterance], references: Sequence[str], transcripts: Transcripts, model: Loaded,
          spec: EvaluateSpec, run: RunContext) -> Scored:
    """WER and CER summed over the test set (asr/ctc.py), the real-time factor, every prediction in the report
    and the first 10 wrong ones printed."""
    from tao_launcher.asr.ctc import error_counts

    hypotheses = transcripts.texts
    word_errors, words = error_counts(hypotheses, references)
    char_errors, chars = error_counts(hypotheses, references, use_cer=True)
    audio = sum(u.duration for u in utterances)
    metrics = {"test_wer": round(word_errors / words, 6) if words else float("inf"),
               "test_cer": round(char_errors / chars, 6) if chars else float("inf"),
               "utterances": len(utterances), "audio_seconds": round(audio, 2),
               "real_time_factor": round(transcripts.seconds / audio, 4) if audio else 0.0}
    report = {**metrics, "word_errors": word_errors, "words": words, "char_errors": char_errors, "chars": chars,
              "manifest": str(spec.test_ds.manifest_filepath),
              "predictions": [{"audio_filepath": str(u.audio_filepath), "reference": u.text, "prediction": h}
                              for u, h in zip(utterances, hypotheses)]}
    wrong = [(u, h) for u, h in zip(utterances, hypotheses) if h != u.text]
    lines = [f"  {Path(u.audio_filepath).name}: said {u.text!r}, heard {h!r}" for u, h in wrong[:10]]
    lines.append(f"WER {metrics['test_wer']:.4f} ({word_errors} errors in {words} words)   CER "
                 f"{metrics['test_cer']:.4f}   {len(utterances)} utterances, {audio / 60:.1f} min of audio, "
                 f"real-time factor {metrics['real_time_factor']:.3f}")
    return Scored(metrics, report, "\n".join(lines))


PREDICT = PredictStep(
    TASK, family="tao_launcher.tasks.speech_to_text.model",
    net="tao_launcher.tasks.speech_to_text.model:SpeechToTextNet", predict=predict, read_inputs=read_inputs,
    rows=rows, line=line, read_labelled=read_labelled, score=score, summary=summary, served_inputs=("AUDIO",),
    from_served=served_audio)
# export: the acoustic model as ONNX (features -> log-probs, dynamic batch and time); .riva adds riva_config.yaml
# (preprocessor, vocabulary, blank): core/export.py
evaluate, infer, infer_onnx, export = PREDICT.subtasks(EvaluateSpec, InferSpec, InferOnnxSpec, ExportSpec)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    from tao_launcher.core.progress import track

    converted = data.convert(spec.dataset_name, Path(spec.source_data_dir), Path(spec.target_data_dir),
                           sample_rate=spec.sample_rate, test_ratio=spec.test_ratio, skip_bad=spec.skip_bad_files,
                           overwrite=run.overwrite, track=lambda clips: track(clips, desc="converting", unit="clip"))
    counts = {k: v for k, v in converted.items() if isinstance(v, (int, float))}
    for name, value in converted.items():
        log.info("%s: %s", name, value)
    run.results.record(counts, target_data_dir=spec.target_data_dir)
    return counts
