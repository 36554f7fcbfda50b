"""speech_to_text subtasks, one typed function each: ``fn(spec, run) -> metrics``.

A CTC acoustic model on log-mel features (model.py): QuartzNet, Jasper or Citrinet block tables
(asr/encoder.py), characters or sentencepiece subwords (asr/vocabulary.py), greedy decoding, WER and CER
as NeMo computes them (asr/ctc.py). Manifests: asr/manifest.py; dataset_convert's inputs: data.py.
torch is imported inside the subtasks that use it (dataset_convert needs none) and Lightning only by
train and finetune (tests/nlp/test_import_cost.py).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence

from tao_launcher.errors import DataError, UsageError
from tao_launcher.registry import RunContext
from tao_launcher.tasks.speech_to_text.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

TASK = "speech_to_text"
MAIN_METRIC = "val_wer"  # lower is better: picks the kept model unless trainer.monitor says otherwise
log = logging.getLogger("tao.speech_to_text")

if TYPE_CHECKING:
    from tao_launcher.asr.manifest import Utterance
    from tao_launcher.core.inference import Runner


def read_utterances(ds, *, require_text: bool = True, training: bool = False) -> List[Utterance]:
    """The utterances of a dataset section's manifest: checked (asr/manifest.py), bad lines skipped and counted
    when ``skip_bad_files``, cut to the duration limits (training) and to ``num_samples``."""
    from tao_launcher.asr.manifest import read_manifest

    utterances, skipped = read_manifest(ds.manifest_filepath, skip_bad=ds.skip_bad_files, require_text=require_text)
    for sentence in skipped[:5]:
        log.warning("skipped %s", sentence)
    if skipped:
        log.warning("skipped %d bad line(s) of %s (skip_bad_files=true)", len(skipped), ds.manifest_filepath)
    if training:
        kept = [u for u in utterances if ds.min_duration <= u.duration <= ds.max_duration]
        if len(kept) < len(utterances):
            log.info("left out %d utterance(s) of %s outside %.1f-%.1f s (min_duration, max_duration)",
                     len(utterances) - len(kept), ds.manifest_filepath, ds.min_duration, ds.max_duration)
        if not kept:
            raise DataError(f"no utterance of {ds.manifest_filepath} lasts between min_duration={ds.min_duration} "
                            f"and max_duration={ds.max_duration} seconds: widen the limits")
        utterances = kept
    return utterances if ds.num_samples == -1 else utterances[:ds.num_samples]


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
    train_utterances = read_utterances(spec.training_ds, training=True)
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
    from tao_launcher.tasks.speech_to_text.model import load_model
    from tao_launcher.tasks.speech_to_text.training import fit

    net, vocabulary, config = load_model(run.model, run.key, TASK)
    config["spec_augment"] = dict(vars(spec.model.spec_augment))
    net.spec_augment = SpecAugment(**config["spec_augment"])
    return fit(net, vocabulary, read_utterances(spec.finetuning_ds, training=True), spec.finetuning_ds,
               spec.validation_ds, spec, run)


# ----------------------------------------------------------------------------- inference

def transcribe(runner: Runner, preprocessor, vocabulary, config: Dict, utterances: Sequence,
               batch_size: int) -> List[str]:
    """Transcripts of the utterances' audio, in input order, through the torch or onnxruntime runner (one path:
    infer and infer_onnx agree). Features come from the model's own preprocessor settings, without dither."""
    from tao_launcher.asr.audio import load_audio
    from tao_launcher.asr.ctc import greedy_decode
    from tao_launcher.asr.dataset import featurize, pad_features
    from tao_launcher.core.data import length_sorted_batches
    from tao_launcher.core.progress import track

    preprocessor.eval()
    features = featurize(preprocessor, lambda u: load_audio(u.audio_filepath, config["sample_rate"]), utterances)
    blank = config["num_classes"] - 1
    texts: List[str] = [""] * len(utterances)
    for batch in track(length_sorted_batches([f.shape[1] for f in features], batch_size), desc="transcribing",
                       unit="batch"):
        padded = pad_features([features[i] for i in batch])  # the padding training uses
        logprobs, encoded_lengths = runner({"audio_signal": padded["features"].numpy(),
                                            "length": padded["feature_lengths"].numpy()})
        for i, ids in zip(batch, greedy_decode(logprobs, encoded_lengths, blank)):
            texts[i] = vocabulary.decode(ids)
    return texts


def _preprocessor(config: Dict):
    from tao_launcher.asr.features import MelFeatures

    return MelFeatures.from_config(config["preprocessor"])


def evaluate(spec: EvaluateSpec, run: RunContext) -> Dict:
    from tao_launcher.asr.ctc import error_counts
    from tao_launcher.core.inference import torch_runner
    from tao_launcher.tasks.speech_to_text.model import load_model

    net, vocabulary, config = load_model(run.model, run.key, TASK)
    utterances = read_utterances(spec.test_ds)
    started = time.perf_counter()
    hypotheses = transcribe(torch_runner(net), net.preprocessor, vocabulary, config, utterances, spec.test_ds.batch_size)
    seconds = time.perf_counter() - started
    references = [u.text for u in utterances]
    word_errors, words = error_counts(hypotheses, references)
    char_errors, chars = error_counts(hypotheses, references, use_cer=True)
    audio = sum(u.duration for u in utterances)
    metrics = {"test_wer": round(word_errors / words, 6) if words else float("inf"),
               "test_cer": round(char_errors / chars, 6) if chars else float("inf"),
               "utterances": len(utterances), "audio_seconds": round(audio, 2),
               "real_time_factor": round(seconds / audio, 4) if audio else 0.0}
    report = {**metrics, "word_errors": word_errors, "words": words, "char_errors": char_errors, "chars": chars,
              "manifest": str(spec.test_ds.manifest_filepath),
              "predictions": [{"audio_filepath": str(u.audio_filepath), "reference": u.text, "prediction": h}
                              for u, h in zip(utterances, hypotheses)]}
    out = run.results.path / "evaluation_report.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    wrong = [(u, h) for u, h in zip(utterances, hypotheses) if h != u.text]
    for u, h in wrong[:10]:
        print(f"  {Path(u.audio_filepath).name}: said {u.text!r}, heard {h!r}", flush=True)
    print(f"WER {metrics['test_wer']:.4f} ({word_errors} errors in {words} words)   CER {metrics['test_cer']:.4f}   "
          f"{len(utterances)} utterances, {audio / 60:.1f} min of audio, real-time factor "
          f"{metrics['real_time_factor']:.3f}", flush=True)
    run.results.record(metrics, report=out)
    return metrics


def _inputs(spec: InferSpec) -> List:
    """infer's audio: ``input_manifest`` (its text ignored) when set, else ``file_paths``."""
    from tao_launcher.asr.audio import audio_info
    from tao_launcher.asr.manifest import Utterance

    if spec.input_manifest:
        from tao_launcher.asr.manifest import read_manifest

        return read_manifest(spec.input_manifest, require_text=False)[0]
    if not spec.file_paths:
        raise UsageError("nothing to transcribe: set file_paths=[a.wav,b.wav] or input_manifest=<manifest.json>")
    return [Utterance(Path(p).absolute(), audio_info(p)[2], "", 0) for p in spec.file_paths]


def _infer_and_report(run: RunContext, runner: Runner, preprocessor, vocabulary, config: Dict, spec) -> Dict:
    utterances = _inputs(spec)
    started = time.perf_counter()
    texts = transcribe(runner, preprocessor, vocabulary, config, utterances, spec.batch_size)
    seconds = time.perf_counter() - started
    audio = sum(u.duration for u in utterances)
    rows = [{"audio_filepath": str(u.audio_filepath), "duration": round(u.duration, 3), "transcript": t}
            for u, t in zip(utterances, texts)]
    for row in rows:
        print(f"{row['audio_filepath']} ({row['duration']:.2f} s): {row['transcript'] or '(nothing recognised)'}",
              flush=True)
    rtf = seconds / audio if audio else 0.0
    print(f"{len(rows)} file(s), {audio:.1f} s of audio in {seconds:.2f} s: real-time factor {rtf:.3f}", flush=True)
    out = run.results.path / "infer_results.json"
    out.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    metrics = {"inputs": len(rows), "audio_seconds": round(audio, 3), "real_time_factor": round(rtf, 4)}
    run.results.record(metrics, predictions=out)
    return metrics


def infer(spec: InferSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import torch_runner
    from tao_launcher.tasks.speech_to_text.model import load_model

    net, vocabulary, config = load_model(run.model, run.key, TASK)
    return _infer_and_report(run, torch_runner(net), net.preprocessor, vocabulary, config, spec)


def infer_onnx(spec: InferOnnxSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import onnx_runner
    from tao_launcher.tasks.speech_to_text.model import load_export

    model_bytes, vocabulary, config = load_export(run.model, run.key, TASK)
    return _infer_and_report(run, onnx_runner(model_bytes), _preprocessor(config), vocabulary, config, spec)


def export(spec: ExportSpec, run: RunContext) -> Dict:
    """ONNX of the acoustic model (features -> log-probs, dynamic batch and time); .riva adds riva_config.yaml
    (preprocessor, vocabulary, blank). Formats and names: core/export.py."""
    from tao_launcher.core.export import export_target, write_export
    from tao_launcher.core.onnx_export import export_onnx, riva_config
    from tao_launcher.tasks.speech_to_text.model import load_model, write_payload

    target = export_target(spec, run)
    net, vocabulary, _ = load_model(run.model, run.key, TASK)

    def files(out: Path) -> None:
        export_onnx(net, out / "model.onnx", opset=spec.onnx_opset)
        write_payload(out, net, vocabulary, weights=False)
        if target.kind == "riva":
            (out / "riva_config.yaml").write_text(riva_config(TASK, net))

    write_export(target, run, TASK, files)
    return {}


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    from tao_launcher.core.progress import track
    from tao_launcher.tasks.speech_to_text import data

    summary = data.convert(spec.dataset_name, Path(spec.source_data_dir), Path(spec.target_data_dir),
                           sample_rate=spec.sample_rate, test_ratio=spec.test_ratio, skip_bad=spec.skip_bad_files,
                           track=lambda clips: track(clips, desc="converting", unit="clip"))
    counts = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
    for name, value in summary.items():
        log.info("%s: %s", name, value)
    run.results.record(counts, target_data_dir=spec.target_data_dir)
    return counts
