"""sentence_pair subtasks: train and finetune, and the predict step that evaluate, infer and infer_onnx share."""

from __future__ import annotations

from typing import Dict

from tao_launcher.core.predict import PredictStep, Scored, input_items
from tao_launcher.core.textfiles import SUBSET_SEED
from tao_launcher.registry import RunContext
from example_task.sentence_pair import data
from example_task.sentence_pair.spec import (
    EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

TASK = "sentence_pair"


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from example_task.sentence_pair.model import PairClassifier
    from example_task.sentence_pair.training import fit
    from tao_launcher.nlp.encoder import pretrained

    encoder, tokenizer = pretrained(spec.model.language_model)
    net = PairClassifier(encoder, {"max_seq_length": 128})
    seed = spec.trainer.seed
    return fit(net, tokenizer, read(spec.training_ds, seed), read(spec.validation_ds, seed), spec.training_ds,
               spec.validation_ds, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    from example_task.sentence_pair.training import fit

    net, tokenizer, _ = PREDICT.load_trained(run)
    seed = spec.trainer.seed
    return fit(net, tokenizer, read(spec.finetuning_ds, seed), read(spec.validation_ds, seed), spec.finetuning_ds,
               spec.validation_ds, spec, run)


def read(ds, seed: int = SUBSET_SEED):
    """A data section's pairs: ``num_samples`` of them drawn with ``seed`` (the spec's trainer.seed in train)."""
    return data.read_pairs(ds.file_path, num_samples=ds.num_samples, seed=seed)


def predict(model, pairs, batch_size, spec=None):
    """The probability that each pair says the same thing."""
    from tao_launcher.nlp.inference import run_batched, softmax

    outputs = run_batched(model.runner, data.encode(model.processor, pairs), batch_size,
                          model.processor.pad_token_id or 0)
    return [float(softmax(o[0])[1]) for o in outputs]


def score(pairs, labels, same, model, spec, run) -> Scored:
    accuracy = sum((p > 0.5) == bool(y) for p, y in zip(same, labels)) / len(labels)
    return Scored({"test_acc": accuracy}, {"accuracy": accuracy, "pairs": len(labels)}, f"accuracy {accuracy:.4f}")


PREDICT = PredictStep(
    TASK, family="tao_launcher.nlp.model", net="example_task.sentence_pair.model:PairClassifier",
    predict=predict, score=score,
    read_inputs=lambda spec: [data.split_pair(item) for item in input_items(spec, data.read_lines, "pairs")],
    read_labelled=lambda spec, model: read(spec.test_ds),
    rows=lambda pairs, same, model, run: [{"first": a, "second": b, "same": round(p, 6)} for (a, b), p in zip(pairs, same)],
    line=lambda row: f"{row['same']:.4f}\t{row['first']}\t{row['second']}")
evaluate, infer, infer_onnx, export = PREDICT.subtasks(EvaluateSpec, InferSpec, InferOnnxSpec, ExportSpec)
