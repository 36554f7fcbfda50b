"""token_classification (NER) subtasks, one typed function each: ``fn(spec, run) -> metrics``.

Words are tagged on their first sub-token; sentences longer than ``max_seq_length`` become
several windows (nlp/tokens.py), so every word gets a tag. Data formats: data.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from tao_launcher.core.predict import Loaded, PredictStep, Scored, input_items, write_lines
from tao_launcher.core.textfiles import data_folder
from tao_launcher.registry import RunContext
from tao_launcher.tasks.token_classification import data
from tao_launcher.tasks.token_classification.data import TASK, log
from tao_launcher.tasks.token_classification.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

# torch, transformers and Lightning are imported inside the functions that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/nlp/test_import_cost.py)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.token_classification.model import TokenClassifier
    from tao_launcher.tasks.token_classification.training import fit

    m = spec.model
    encoder, tokenizer = pretrained(m.language_model)
    config = {"label_names": data.label_set(m.label_ids, spec.data_dir), "max_seq_length": m.dataset.max_seq_length,
              "num_fc_layers": m.head.num_fc_layers, "fc_dropout": m.head.fc_dropout,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return fit(TokenClassifier(encoder, config), tokenizer, spec.training_ds, spec.validation_ds, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.token_classification.model import TokenClassifier
    from tao_launcher.tasks.token_classification.training import fit

    net, tokenizer, config = PREDICT.load_trained(run)
    default = data_folder(spec.data_dir) / data.LABEL_IDS
    if spec.model.label_ids or default.is_file():
        labels = data.label_set(spec.model.label_ids, spec.data_dir)
        if labels != config["label_names"]:
            log.info("the label set differs from the model's (%s -> %s): a new tag classifier on the trained encoder",
                     " ".join(config["label_names"]), " ".join(labels))
            net = TokenClassifier(net.encoder, {**config, "label_names": labels})
    return fit(net, tokenizer, spec.finetuning_ds, spec.validation_ds, spec, run)


# ----------------------------------------------------------------------------- predict step

def predict(model: Loaded, texts: List[str], batch_size: int, spec=None) -> List[List[str]]:
    """The tag of every word of each text (words separated by spaces), decoded as the model config says
    (nlp/bio.py)."""
    from tao_launcher.nlp import bio
    from tao_launcher.nlp.tokens import predict_texts

    return bio.decode_words(predict_texts(model, texts, batch_size)[0], model.config["label_names"], model.config)


def read_labelled(spec: EvaluateSpec, model: Loaded):
    words, tags = data.read(spec.data_dir, spec.test_ds, model.config["label_names"])
    return [" ".join(sentence) for sentence in words], tags


def score(texts, gold: List[List[str]], pred: List[List[str]], model: Loaded, spec, run: RunContext) -> Scored:
    import torch

    from tao_launcher.core.metrics import classification_report, confusion_matrix, format_span_report, span_report
    from tao_launcher.core.plots import save_confusion_matrix

    names = model.config["label_names"]
    report = span_report(gold, pred)
    index = {name: i for i, name in enumerate(names)}
    matrix = confusion_matrix(torch.tensor([index[t] for s in pred for t in s]),
                              torch.tensor([index[t] for s in gold for t in s]), len(names))
    report["tags"] = classification_report(matrix, names)
    report["confusion_matrix"] = {"labels": names, "rows_gold_columns_predicted": matrix.tolist()}
    save_confusion_matrix(run, matrix, names, title=f"{TASK}: tags per word")
    micro = report["micro"]
    metrics = {"test_f1": micro["f1"], "test_precision": micro["precision"], "test_recall": micro["recall"],
               "test_token_acc": report["token_accuracy"]}
    return Scored(metrics, report, format_span_report(report))


def rows(texts: List[str], tags: List[List[str]], model: Loaded, run: RunContext) -> List[Dict]:
    """infer_results.json rows; infer_results.txt beside them holds the tagged lines alone (data.py)."""
    return [{"text": t, "tagged": data.tagged_text(t.split(), g), "tags": g} for t, g in zip(texts, tags)]


PREDICT = PredictStep(
    TASK, family="tao_launcher.nlp.model", net="tao_launcher.tasks.token_classification.model:TokenClassifier",
    predict=predict, read_inputs=lambda spec: input_items(spec, data.read_sentences), rows=rows,
    line=lambda r: r["tagged"], read_labelled=read_labelled, score=score, write_files=write_lines("tagged"))
evaluate, infer, infer_onnx, export = PREDICT.subtasks(EvaluateSpec, InferSpec, InferOnnxSpec, ExportSpec)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    counts = data.convert(Path(spec.source_data_dir), Path(spec.target_data_dir), overwrite=run.overwrite)
    for name, count in counts.items():
        log.info("wrote %s/%s: %d lines", spec.target_data_dir, name, count)
    run.results.record({f"lines_{k.split('.')[0]}": v for k, v in counts.items()},
                       target_data_dir=spec.target_data_dir)
    return counts
