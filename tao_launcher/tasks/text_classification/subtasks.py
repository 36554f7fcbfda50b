"""text_classification subtasks, one typed function each: ``fn(spec, run) -> metrics``.

``spec`` is the resolved schema of ``spec.py``; ``run`` is the ``RunContext`` (results folder,
key, -m model, -g devices). Training, archives, export and the runners come from the NLP layer.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

from tao_launcher.core.data import BucketedDataModule
from tao_launcher.core.metrics import classification_report, confusion_matrix, format_report
from tao_launcher.registry import RunContext
from tao_launcher.errors import UsageError
from tao_launcher.nlp import subtasks as nlp
from tao_launcher.nlp.encoder import pretrained, tokenize
from tao_launcher.nlp.inference import Runner, onnx_runner, run_batched, softmax, torch_runner
from tao_launcher.nlp.model import load_export, load_model
from tao_launcher.tasks.text_classification import data
from tao_launcher.tasks.text_classification.model import TextClassificationModule, TextClassifier
from tao_launcher.tasks.text_classification.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

TASK = "text_classification"
log = logging.getLogger("tao.text_classification")


def _fit(net: TextClassifier, tokenizer, train_ds, val_ds, spec, run, range_fix: str = data.LABEL_RANGE_FIX) -> Dict:
    config = net.model_config
    num_classes, max_len = config["num_classes"], config["max_seq_length"]
    train_x, train_y = data.read_examples(train_ds.file_path, train_ds.num_samples, num_classes, range_fix)
    val_x, val_y = data.read_examples(val_ds.file_path, val_ds.num_samples, num_classes, range_fix)
    log.info("training on %d sentences from %s, validating on %d from %s",
             len(train_x), train_ds.file_path, len(val_x), val_ds.file_path)
    weights = None
    if config.get("class_balancing") == "weighted_loss":
        counts = Counter(train_y)
        weights = torch.tensor([len(train_y) / (num_classes * max(1, counts[c])) for c in range(num_classes)],
                               dtype=torch.float)
        log.info("class weights for the loss: %s", [round(w, 3) for w in weights.tolist()])

    def examples(sentences, labels):
        return [{"input_ids": ids, "labels": y} for ids, y in zip(tokenize(tokenizer, sentences, max_len), labels)]

    datamodule = BucketedDataModule(
        examples(train_x, train_y), examples(val_x, val_y), pad_id=tokenizer.pad_token_id or 0,
        seed=spec.trainer.seed, train_batch_size=train_ds.batch_size, val_batch_size=val_ds.batch_size,
        shuffle=train_ds.shuffle, train_num_workers=train_ds.num_workers, val_num_workers=val_ds.num_workers)
    module = TextClassificationModule(net, spec.optim, weights)
    return nlp.fit_and_save(TASK, module, datamodule, tokenizer, spec, run, main_metric="val_acc")


def train(spec: TrainSpec, run: RunContext) -> Dict:
    m = spec.model
    label_names = data.read_label_names(m.class_labels.class_labels_file, m.dataset.num_classes)
    encoder, tokenizer = pretrained(m.language_model)
    config = {"num_classes": m.dataset.num_classes, "label_names": label_names,
              "max_seq_length": m.dataset.max_seq_length, "class_balancing": m.dataset.class_balancing,
              "num_output_layers": m.classifier_head.num_output_layers, "fc_dropout": m.classifier_head.fc_dropout,
              "pooling": m.classifier_head.pooling,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return _fit(TextClassifier(encoder, config), tokenizer, spec.training_ds, spec.validation_ds, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    net, tokenizer, config = load_model(run.model, run.key, TASK, TextClassifier)
    wanted = spec.model.class_labels.class_labels_file
    if wanted:
        names = data.read_label_names(wanted, config["num_classes"])
        if names != config["label_names"]:
            raise UsageError(f"the labels of {wanted} ({', '.join(names)}) do not match those of {run.model} "
                             f"({', '.join(config['label_names'])}): fine-tune on the same label set, or train "
                             f"a new model")
    fix = (f"the model in {run.model} has {config['num_classes']} classes "
           f"({', '.join(config['label_names'])}): fine-tune on data with the same label set")
    return _fit(net, tokenizer, spec.finetuning_ds, spec.validation_ds, spec, run, fix)


# ----------------------------------------------------------------------------- inference

def batched_probabilities(runner: Runner, tokenizer, sentences: Sequence[str], max_seq_length: int,
                          batch_size: int) -> np.ndarray:
    """Class probabilities in input order; batches of similar length keep padding small."""
    examples = [{"input_ids": ids} for ids in tokenize(tokenizer, sentences, max_seq_length)]
    outputs = run_batched(runner, examples, batch_size, tokenizer.pad_token_id or 0)
    return softmax(np.stack([o[0] for o in outputs]).astype(np.float32))


def evaluate(spec: EvaluateSpec, run: RunContext) -> Dict:
    net, tokenizer, config = load_model(run.model, run.key, TASK, TextClassifier)
    ds = spec.test_ds
    sentences, labels = data.read_examples(ds.file_path, ds.num_samples, config["num_classes"])
    probs = batched_probabilities(torch_runner(net), tokenizer, sentences, config["max_seq_length"], ds.batch_size)
    matrix = confusion_matrix(torch.from_numpy(probs.argmax(-1)), torch.tensor(labels), config["num_classes"])
    report = classification_report(matrix, config["label_names"])
    print(format_report(report, config["label_names"]), flush=True)
    out = run.results.path / "evaluation_report.json"
    out.write_text(json.dumps(report, indent=2))
    metrics = {"test_acc": report["accuracy"], "test_macro_f1": report["macro_f1"]}
    run.results.record(metrics, report=out)
    return metrics


def _report_predictions(run: RunContext, probs: np.ndarray, sentences: List[str], label_names: List[str]) -> Dict:
    rows = [{"sentence": s, "label": label_names[int(p.argmax())], "score": round(float(p.max()), 6)}
            for s, p in zip(sentences, probs)]
    return nlp.print_and_save(run, rows, lambda r: f"{r['label']}\t{r['score']:.4f}\t{r['sentence']}")


def infer(spec: InferSpec, run: RunContext) -> Dict:
    sentences = nlp.input_texts(spec, data.read_sentences)
    net, tokenizer, config = load_model(run.model, run.key, TASK, TextClassifier)
    probs = batched_probabilities(torch_runner(net), tokenizer, sentences, config["max_seq_length"], spec.batch_size)
    return _report_predictions(run, probs, sentences, config["label_names"])


def infer_onnx(spec: InferOnnxSpec, run: RunContext) -> Dict:
    sentences = nlp.input_texts(spec, data.read_sentences)
    model_bytes, tokenizer, config = load_export(run.model, run.key, TASK)
    probs = batched_probabilities(onnx_runner(model_bytes), tokenizer, sentences, config["max_seq_length"],
                                  spec.batch_size)
    return _report_predictions(run, probs, sentences, config["label_names"])


def export(spec: ExportSpec, run: RunContext) -> Dict:
    return nlp.export(spec, run, TASK, TextClassifier)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    counts = data.convert(spec.dataset_name, Path(spec.source_data_dir), Path(spec.target_data_dir))
    for name, count in counts.items():
        log.info("wrote %s/%s: %d lines", spec.target_data_dir, name, count)
    run.results.record({f"lines_{k.split('.')[0]}": v for k, v in counts.items()},
                       target_data_dir=spec.target_data_dir)
    return counts
