"""token_classification (NER) subtasks, one typed function each: ``fn(spec, run) -> metrics``.

Words are tagged on their first sub-token; sentences longer than ``max_seq_length`` become
several windows (nlp/tokens.py), so every word gets a tag. Data formats: data.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence

from tao_launcher.errors import DataError
from tao_launcher.nlp import subtasks as nlp
from tao_launcher.registry import RunContext
from tao_launcher.tasks.token_classification import data
from tao_launcher.tasks.token_classification.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

TASK = "token_classification"
INFER_MARGIN = 16  # words of context on each side where a long sentence is split into windows
log = logging.getLogger("tao.token_classification")
# torch, transformers and Lightning are imported inside the subtasks that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/test_import_cost.py)

if TYPE_CHECKING:
    from tao_launcher.core.inference import Runner


def _label_set(label_ids: str | None, data_dir: str) -> List[str]:
    return data.read_label_ids(Path(label_ids) if label_ids else nlp.data_folder(data_dir) / "label_ids.csv")


def read(data_dir: str, ds, label_names: Sequence[str]):
    """Words and tags of a split in data_dir."""
    folder = nlp.data_folder(data_dir)
    return data.read_examples(folder / ds.text_file, folder / ds.labels_file, ds.num_samples, label_names)


def _load(run: RunContext):
    """Network, tokenizer and model config of the ``-m`` archive."""
    from tao_launcher.nlp.model import load_run_model
    from tao_launcher.tasks.token_classification.model import TokenClassifier

    return load_run_model(run, TASK, TokenClassifier)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.token_classification.model import TokenClassifier
    from tao_launcher.tasks.token_classification.training import fit

    m = spec.model
    label_names = _label_set(m.label_ids, spec.data_dir)
    encoder, tokenizer = pretrained(m.language_model)
    config = {"label_names": label_names, "max_seq_length": m.dataset.max_seq_length,
              "num_fc_layers": m.head.num_fc_layers, "fc_dropout": m.head.fc_dropout,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return fit(TokenClassifier(encoder, config), tokenizer, spec.training_ds, spec.validation_ds, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.token_classification.model import TokenClassifier
    from tao_launcher.tasks.token_classification.training import fit

    net, tokenizer, config = _load(run)
    default = nlp.data_folder(spec.data_dir) / "label_ids.csv"
    if spec.model.label_ids or default.is_file():
        labels = _label_set(spec.model.label_ids, spec.data_dir)
        if labels != config["label_names"]:
            log.info("the label set differs from the model's (%s -> %s): a new tag classifier on the trained encoder",
                     " ".join(config["label_names"]), " ".join(labels))
            net = TokenClassifier(net.encoder, {**config, "label_names": labels})
    return fit(net, tokenizer, spec.finetuning_ds, spec.validation_ds, spec, run)


# ----------------------------------------------------------------------------- inference

def predict_tags(runner: Runner, tokenizer, config: Dict, sentences: Sequence[Sequence[str]],
                 batch_size: int) -> List[List[str]]:
    """The tag of every word (decoded as the model config says: ``nlp.bio``), from the torch or the
    onnxruntime runner."""
    from tao_launcher.nlp import bio
    from tao_launcher.nlp.tokens import predict_words

    names, constrained = config["label_names"], config.get(bio.CONFIG_KEY, False)
    logits = predict_words(runner, tokenizer, sentences, config["max_seq_length"], batch_size, INFER_MARGIN)[0]
    return [[names[i] for i in bio.decode(sentence, names, constrained)] for sentence in logits]


def evaluate(spec: EvaluateSpec, run: RunContext) -> Dict:
    import torch

    from tao_launcher.core.metrics import classification_report, confusion_matrix, format_span_report, span_report
    from tao_launcher.core.inference import torch_runner

    net, tokenizer, config = _load(run)
    names = config["label_names"]
    words, gold = read(spec.data_dir, spec.test_ds, names)
    pred = predict_tags(torch_runner(net), tokenizer, config, words, spec.test_ds.batch_size)
    report = span_report(gold, pred)
    index = {name: i for i, name in enumerate(names)}
    matrix = confusion_matrix(torch.tensor([index[t] for s in pred for t in s]),
                              torch.tensor([index[t] for s in gold for t in s]), len(names))
    report["tags"] = classification_report(matrix, names)
    report["confusion_matrix"] = {"labels": names, "rows_gold_columns_predicted": matrix.tolist()}
    from tao_launcher.core.plots import save_confusion_matrix
    save_confusion_matrix(run, matrix, names, title=f"{TASK}: tags per word")
    print(format_span_report(report), flush=True)
    out = run.results.path / "evaluation_report.json"
    out.write_text(json.dumps(report, indent=2))
    micro = report["micro"]
    metrics = {"test_f1": micro["f1"], "test_precision": micro["precision"], "test_recall": micro["recall"],
               "test_token_acc": report["token_accuracy"]}
    run.results.record(metrics, report=out)
    return metrics


def _tag_and_report(run: RunContext, runner: Runner, tokenizer, config: Dict, texts: List[str], spec) -> Dict:
    sentences = [t.split() for t in texts]
    if not all(sentences):
        raise DataError("a sentence to tag is empty: every input_batch item and input_file line needs a word")
    tags = predict_tags(runner, tokenizer, config, sentences, spec.batch_size)
    rows = [{"text": t, "tagged": data.tagged_text(w, g), "tags": g} for t, w, g in zip(texts, sentences, tags)]
    (run.results.path / "infer_results.txt").write_text("".join(r["tagged"] + "\n" for r in rows), encoding="utf-8")
    return nlp.print_and_save(run, rows, lambda r: r["tagged"])


def infer(spec: InferSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import torch_runner

    texts = nlp.input_texts(spec, data.read_sentences)
    net, tokenizer, config = _load(run)
    return _tag_and_report(run, torch_runner(net), tokenizer, config, texts, spec)


def infer_onnx(spec: InferOnnxSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import onnx_runner
    from tao_launcher.nlp.model import load_export

    texts = nlp.input_texts(spec, data.read_sentences)
    model_bytes, tokenizer, config = load_export(run.model, run.key, TASK)
    return _tag_and_report(run, onnx_runner(model_bytes), tokenizer, config, texts, spec)


def export(spec: ExportSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.token_classification.model import TokenClassifier

    return nlp.export(spec, run, TASK, TokenClassifier)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    counts = data.convert(Path(spec.source_data_dir), Path(spec.target_data_dir))
    for name, count in counts.items():
        log.info("wrote %s/%s: %d lines", spec.target_data_dir, name, count)
    run.results.record({f"lines_{k.split('.')[0]}": v for k, v in counts.items()},
                       target_data_dir=spec.target_data_dir)
    return counts
