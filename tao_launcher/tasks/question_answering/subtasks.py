"""question_answering subtasks (extractive, SQuAD v1.1/v2.0), one typed function each: ``fn(spec, run) -> metrics``.

Questions become windows (windows.py), windows logits, logits answers (decoding.py), answers scores
(scoring.py, the official SQuAD v2.0 rules). evaluate, infer and infer_onnx share ``predict``, with the
torch or the onnxruntime runner, so they give the same answers. Data format: data.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence

from tao_launcher.errors import DataError, UsageError
from tao_launcher.nlp import subtasks as nlp
from tao_launcher.registry import RunContext
from tao_launcher.tasks.question_answering import data
from tao_launcher.tasks.question_answering.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

if TYPE_CHECKING:
    from tao_launcher.core.inference import Runner
    from tao_launcher.tasks.question_answering.decoding import Prediction

TASK = "question_answering"
log = logging.getLogger("tao.question_answering")
NO_ANSWER_TEXT = "no answer"
# torch, transformers and Lightning are imported inside the subtasks that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/test_import_cost.py)


def read_questions(ds, what: str) -> List[data.Question]:
    """The questions of a data section's file (its ``file`` and ``num_samples``)."""
    return data.read_squad(ds.file, ds.num_samples, what=f"{what} file").questions


def usable(questions: List[data.Question], config: Dict, file: str) -> List[data.Question]:
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


def windows_of(tokenizer, questions: Sequence[data.Question], config: Dict):
    from tao_launcher.tasks.question_answering.windows import make_windows

    return make_windows(tokenizer, questions, config["max_seq_length"], config["doc_stride"],
                        config["max_query_length"])


def _load(run: RunContext):
    """Network, tokenizer and model config of the ``-m`` archive."""
    from tao_launcher.nlp.model import load_run_model
    from tao_launcher.tasks.question_answering.model import QuestionAnsweringNet

    return load_run_model(run, TASK, QuestionAnsweringNet)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.question_answering.model import QuestionAnsweringNet
    from tao_launcher.tasks.question_answering.training import fit

    files = read_questions(spec.training_ds, "training"), read_questions(spec.validation_ds, "validation")
    m = spec.model
    d = m.dataset
    encoder, tokenizer = pretrained(m.language_model)
    config = {"version_2_with_negative": d.version_2_with_negative, "max_seq_length": d.max_seq_length,
              "doc_stride": d.doc_stride, "max_query_length": d.max_query_length,
              "num_layers": m.token_classifier.num_layers, "dropout": m.token_classifier.dropout,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return fit(QuestionAnsweringNet(encoder, config), tokenizer, files, spec.training_ds, spec.validation_ds, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.question_answering.training import fit

    files = read_questions(spec.finetuning_ds, "fine-tuning"), read_questions(spec.validation_ds, "validation")
    net, tokenizer, _ = _load(run)
    return fit(net, tokenizer, files, spec.finetuning_ds, spec.validation_ds, spec, run)


# ----------------------------------------------------------------------------- inference

def predict(runner: Runner, tokenizer, config: Dict, questions: Sequence[data.Question], batch_size: int,
            decoding) -> List[Prediction]:
    """Every question's prediction, from the torch or the onnxruntime runner."""
    from tao_launcher.nlp.inference import run_batched
    from tao_launcher.tasks.question_answering.decoding import decode_all

    windows = windows_of(tokenizer, questions, config)
    examples = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids} for w in windows]
    outputs = [o[0] for o in run_batched(runner, examples, batch_size, tokenizer.pad_token_id or 0)]
    return decode_all(outputs, windows, [q.context for q in questions], n_best_size=decoding.n_best_size,
                      max_answer_length=decoding.max_answer_length,
                      version_2_with_negative=config["version_2_with_negative"],
                      null_score_diff_threshold=decoding.null_score_diff_threshold)


def _write_json(run: RunContext, name: str, value) -> Path:
    out = run.results.path / name
    out.write_text(json.dumps(value, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


def _predictions_files(run: RunContext, questions, predictions, config: Dict) -> Dict[str, Path]:
    """predictions.json (id -> answer, "" for no answer), nbest_predictions.json and, for SQuAD v2.0,
    null_odds.json (id -> null score minus best span score), as Hugging Face's run_qa writes them."""
    pairs = list(zip(questions, predictions))
    files = {"predictions": _write_json(run, "predictions.json", {q.id: p.answer for q, p in pairs}),
             "nbest_predictions": _write_json(run, "nbest_predictions.json", {q.id: p.nbest for q, p in pairs})}
    if config["version_2_with_negative"]:
        files["null_odds"] = _write_json(run, "null_odds.json", {q.id: p.null_score_diff for q, p in pairs})
    return files


def format_scores(scores: Dict[str, float], file: str) -> str:
    lines = [f"SQuAD scores (official v2.0 rules, percent) on {file}:", f"{'':8}{'exact':>8}{'f1':>8}{'questions':>11}"]
    for part, name in (("", "all"), ("HasAns_", "HasAns"), ("NoAns_", "NoAns")):
        if f"{part}total" in scores:
            lines.append(f"{name:8}{scores[part + 'exact']:8.2f}{scores[part + 'f1']:8.2f}{scores[part + 'total']:11d}")
    return "\n".join(lines)


def evaluate(spec: EvaluateSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import torch_runner
    from tao_launcher.tasks.question_answering.scoring import squad_scores

    net, tokenizer, config = _load(run)
    ds = spec.test_ds
    questions = data.read_squad(ds.file, ds.num_samples, what="test file").questions
    predictions = predict(torch_runner(net), tokenizer, config, questions, ds.batch_size, spec.decoding)
    scores = squad_scores({q.id: q.answer_texts for q in questions},
                          {q.id: p.answer for q, p in zip(questions, predictions)})
    print(format_scores(scores, ds.file), flush=True)
    files = _predictions_files(run, questions, predictions, config)
    report = {"file": ds.file, "version_2_with_negative": config["version_2_with_negative"],
              "decoding": dataclasses.asdict(spec.decoding), **scores}
    out = _write_json(run, "evaluation_report.json", report)
    metrics = {"test_exact_match": scores["exact"], "test_f1": scores["f1"]}
    for part in ("HasAns", "NoAns"):
        if f"{part}_total" in scores:
            metrics[f"test_{part}_exact_match"] = scores[f"{part}_exact"]
            metrics[f"test_{part}_f1"] = scores[f"{part}_f1"]
    run.results.record(metrics, report=out, **files)
    return metrics


def _questions(spec) -> List[data.Question]:
    if spec.input_file:
        return data.read_squad(spec.input_file, need_answers=False, what="input_file").questions
    if not spec.input_batch:
        raise UsageError("input_batch is empty: give it a list of {\"question\": ..., \"context\": ...}, "
                         "or set input_file")
    return data.batch_questions(spec.input_batch)


def _answer_and_report(run: RunContext, runner: Runner, tokenizer, config: Dict, questions, spec) -> Dict:
    predictions = predict(runner, tokenizer, config, questions, spec.batch_size, spec.decoding)
    rows = [{"id": q.id, "question": q.question, "answer": p.answer, "no_answer": not p.answer,
             "score": round(p.probability, 6)} for q, p in zip(questions, predictions)]
    _predictions_files(run, questions, predictions, config)
    return nlp.print_and_save(run, rows,
                              lambda r: f"{r['question']}\t{r['answer'] or NO_ANSWER_TEXT}\t{r['score']:.4f}")


def infer(spec: InferSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import torch_runner

    questions = _questions(spec)
    net, tokenizer, config = _load(run)
    return _answer_and_report(run, torch_runner(net), tokenizer, config, questions, spec)


def infer_onnx(spec: InferOnnxSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import onnx_runner
    from tao_launcher.nlp.model import load_export

    questions = _questions(spec)
    model_bytes, tokenizer, config = load_export(run.model, run.key, TASK)
    return _answer_and_report(run, onnx_runner(model_bytes), tokenizer, config, questions, spec)


def export(spec: ExportSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.question_answering.model import QuestionAnsweringNet

    return nlp.export(spec, run, TASK, QuestionAnsweringNet)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    target = Path(spec.target_data_dir) if spec.target_data_dir else None
    counts = data.convert(Path(spec.source_file), target, spec.dev_ratio, spec.seed)
    log.info("%s: %d articles, %d paragraphs, %d questions (%d unanswerable), %d answers (%d not at answer_start)",
             spec.source_file, counts["articles"], counts["paragraphs"], counts["questions"], counts["unanswerable"],
             counts["answers"], counts["answers_not_at_start"])
    if target is not None and spec.dev_ratio > 0:
        for split in ("train", "dev"):
            log.info("wrote %s: %d articles, %d questions", target / f"{split}.json", counts[f"{split}_articles"],
                     counts[f"{split}_questions"])
        run.results.record(counts, target_data_dir=str(target))
    else:
        run.results.record(counts)
    return counts
