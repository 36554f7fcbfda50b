"""question_answering subtasks (extractive, SQuAD v1.1/v2.0), one typed function each: ``fn(spec, run) -> metrics``.

Questions become windows (nlp/qa_windows.py), windows logits, logits answers (nlp/span_decoding.py), answers
scores (nlp/squad_scoring.py, the official SQuAD v2.0 rules). evaluate, infer and infer_onnx are the shared
predict path (core/predict.py) over ``predict``, so they give the same answers. Data format: data.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence

from tao_launcher.core.predict import Loaded, PredictStep, Scored, input_items, served_texts, write_json
from tao_launcher.errors import UsageError
from tao_launcher.registry import RunContext
from tao_launcher.tasks.question_answering import data
from tao_launcher.tasks.question_answering.data import TASK, log
from tao_launcher.tasks.question_answering.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

if TYPE_CHECKING:
    from tao_launcher.nlp.span_decoding import Prediction

NO_ANSWER_TEXT = "no answer"
# torch, transformers and Lightning are imported inside the subtasks that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/nlp/test_import_cost.py)


def read_questions(ds, what: str, seed: int) -> List[data.Question]:
    """The questions of a data section's file (its ``file`` and ``num_samples``, drawn with ``seed``)."""
    return data.read_squad(ds.file, ds.num_samples, what=f"{what} file", seed=seed).questions


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.question_answering.model import QuestionAnsweringNet
    from tao_launcher.tasks.question_answering.training import fit

    seed = spec.trainer.seed
    files = read_questions(spec.training_ds, "training", seed), read_questions(spec.validation_ds, "validation", seed)
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

    seed = spec.trainer.seed
    files = (read_questions(spec.finetuning_ds, "fine-tuning", seed),
             read_questions(spec.validation_ds, "validation", seed))
    net, tokenizer, _ = PREDICT.load_trained(run)
    return fit(net, tokenizer, files, spec.finetuning_ds, spec.validation_ds, spec, run)


# ----------------------------------------------------------------------------- predict step

def predict(model: Loaded, questions: Sequence[data.Question], batch_size: int, spec) -> List[Prediction]:
    """Every question's prediction from all its windows, decoded as ``spec.decoding`` says."""
    from tao_launcher.nlp.inference import run_batched
    from tao_launcher.nlp.qa_windows import windows_of
    from tao_launcher.nlp.span_decoding import decode_all, decoding_settings

    tokenizer, config = model.processor, model.config
    windows = windows_of(tokenizer, questions, config)
    examples = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids} for w in windows]
    outputs = [o[0] for o in run_batched(model.runner, examples, batch_size, tokenizer.pad_token_id or 0)]
    return decode_all(outputs, windows, [q.context for q in questions],
                      **decoding_settings(spec.decoding, config["version_2_with_negative"]))


def read_inputs(spec: InferSpec) -> List[data.Question]:
    """infer's questions: a SQuAD ``input_file`` (answers ignored), else ``input_batch``'s question/context pairs."""
    items = input_items(spec, lambda file: data.read_squad(file, need_answers=False, what="input_file").questions,
                        what='{"question": ..., "context": ...}', words=None)
    return items if spec.input_file else data.batch_questions(items)


def served_questions(columns: Dict[str, List]) -> List[data.Question]:
    """A served request's questions: QUESTION and CONTEXT, item for item (serving/triton_model.py)."""
    questions, contexts = served_texts(columns.get("QUESTION", []), "QUESTION"), \
        served_texts(columns.get("CONTEXT", []), "CONTEXT")
    if len(questions) != len(contexts):
        raise UsageError(f"the request has {len(questions)} QUESTION and {len(contexts)} CONTEXT items: send one "
                         f"context per question")
    return data.batch_questions([{"question": q, "context": c} for q, c in zip(questions, contexts)])


def write_predictions(run: RunContext, questions, predictions, config: Dict) -> Dict[str, Path]:
    """predictions.json, nbest_predictions.json and (SQuAD v2.0) null_odds.json: span_decoding.prediction_files."""
    from tao_launcher.nlp.span_decoding import prediction_files

    files = prediction_files([q.id for q in questions], predictions, config["version_2_with_negative"])
    return {name: write_json(run, f"{name}.json", value) for name, value in files.items()}


def rows(questions, predictions, model: Loaded, run: RunContext) -> List[Dict]:
    return [{"id": q.id, "question": q.question, "answer": p.answer, "no_answer": not p.answer,
             "score": round(p.probability, 6)} for q, p in zip(questions, predictions)]


def read_labelled(spec: EvaluateSpec, model: Loaded):
    """The test questions, and their gold answers as the official scoring takes them: id -> answer texts."""
    questions = data.read_squad(spec.test_ds.file, spec.test_ds.num_samples, what="test file").questions
    return questions, {q.id: q.answer_texts for q in questions}


def score(questions, gold, predictions, model: Loaded, spec: EvaluateSpec, run: RunContext) -> Scored:
    from tao_launcher.nlp.squad_scoring import format_scores, squad_scores

    scores = squad_scores(gold, {q.id: p.answer for q, p in zip(questions, predictions)})
    files = write_predictions(run, questions, predictions, model.config)
    report = {"file": spec.test_ds.file, "version_2_with_negative": model.config["version_2_with_negative"],
              "decoding": dataclasses.asdict(spec.decoding), **scores}
    # test_exact_match and test_f1, then the same of HasAns and NoAns where the file has such questions
    metrics = {f"test_{part}{name}": scores[part + key] for part in ("", "HasAns_", "NoAns_")
               if f"{part}total" in scores for key, name in (("exact", "exact_match"), ("f1", "f1"))}
    return Scored(metrics, report, format_scores(scores, spec.test_ds.file), files)


PREDICT = PredictStep(
    TASK, family="tao_launcher.nlp.model", net="tao_launcher.tasks.question_answering.model:QuestionAnsweringNet",
    predict=predict, read_inputs=read_inputs, rows=rows, read_labelled=read_labelled, score=score,
    write_files=lambda run, questions, predictions, rows, model: write_predictions(run, questions, predictions,
                                                                                  model.config),
    served_inputs=("QUESTION", "CONTEXT"), from_served=served_questions,
    line=lambda r: f"{r['question']}\t{r['answer'] or NO_ANSWER_TEXT}\t{r['score']:.4f}")
evaluate, infer, infer_onnx, export = PREDICT.subtasks(EvaluateSpec, InferSpec, InferOnnxSpec, ExportSpec)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    target = Path(spec.target_data_dir) if spec.target_data_dir else None
    counts = data.convert(Path(spec.source_file), target, spec.dev_ratio, spec.seed, overwrite=run.overwrite)
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
