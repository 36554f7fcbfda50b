"""text_classification subtasks, one typed function each: ``fn(spec, run) -> metrics``.

``spec`` is the resolved schema of ``spec.py``; ``run`` is the ``RunContext`` (results folder,
key, -m model, -g devices). Training, archives, export and the runners come from the NLP layer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence

from tao_launcher.core.predict import Loaded, PredictStep, Scored, input_items
from tao_launcher.errors import UsageError
from tao_launcher.registry import RunContext
from tao_launcher.tasks.text_classification import data
from tao_launcher.tasks.text_classification.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

if TYPE_CHECKING:
    import numpy as np

TASK = "text_classification"
log = logging.getLogger("tao.text_classification")
# torch, transformers and Lightning are imported inside the functions that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/nlp/test_import_cost.py)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.text_classification.model import TextClassifier
    from tao_launcher.tasks.text_classification.training import fit

    m = spec.model
    label_names = data.read_label_names(m.class_labels.class_labels_file, m.dataset.num_classes)
    encoder, tokenizer = pretrained(m.language_model)
    config = {"num_classes": len(label_names), "label_names": label_names,
              "max_seq_length": m.dataset.max_seq_length, "class_balancing": m.dataset.class_balancing,
              "num_output_layers": m.classifier_head.num_output_layers, "fc_dropout": m.classifier_head.fc_dropout,
              "pooling": m.classifier_head.pooling,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return fit(TextClassifier(encoder, config), tokenizer, spec.training_ds, spec.validation_ds, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.text_classification.training import fit

    net, tokenizer, config = PREDICT.load_trained(run)
    wanted = spec.model.class_labels.class_labels_file
    if wanted:
        names = data.read_label_names(wanted, config["num_classes"])
        if names != config["label_names"]:
            raise UsageError(f"the labels of {wanted} ({', '.join(names)}) do not match those of {run.model} "
                             f"({', '.join(config['label_names'])}): fine-tune on the same label set, or train "
                             f"a new model")
    fix = (f"the model in {run.model} has {config['num_classes']} classes "
           f"({', '.join(config['label_names'])}): fine-tune on data with the same label set")
    return fit(net, tokenizer, spec.finetuning_ds, spec.validation_ds, spec, run, fix)


# ----------------------------------------------------------------------------- predict step

def predict(model: Loaded, sentences: Sequence[str], batch_size: int, spec=None) -> np.ndarray:
    """Class probabilities in input order; batches of similar length keep padding small."""
    import numpy as np

    from tao_launcher.nlp.encoder import tokenize
    from tao_launcher.nlp.inference import run_batched, softmax

    tokenizer = model.processor
    examples = [{"input_ids": ids} for ids in tokenize(tokenizer, sentences, model.config["max_seq_length"])]
    outputs = run_batched(model.runner, examples, batch_size, tokenizer.pad_token_id or 0)
    return softmax(np.stack([o[0] for o in outputs]).astype(np.float32))


def read_labelled(spec: EvaluateSpec, model: Loaded):
    ds = spec.test_ds
    return data.read_examples(ds.file_path, ds.num_samples, model.config["num_classes"])


def score(sentences, labels, probs, model: Loaded, spec: EvaluateSpec, run: RunContext) -> Scored:
    import torch

    from tao_launcher.core.metrics import classification_report, confusion_matrix, format_report
    from tao_launcher.core.plots import save_confusion_matrix

    names = model.config["label_names"]
    matrix = confusion_matrix(torch.from_numpy(probs.argmax(-1)), torch.tensor(labels), len(names))
    report = classification_report(matrix, names)
    save_confusion_matrix(run, matrix, names, title=f"{TASK}: {Path(spec.test_ds.file_path).name}")
    return Scored({"test_acc": report["accuracy"], "test_macro_f1": report["macro_f1"]}, report,
                  format_report(report, names))


def rows(sentences: List[str], probs, model: Loaded, run: RunContext) -> List[Dict]:
    names = model.config["label_names"]
    return [{"sentence": s, "label": names[int(p.argmax())], "score": round(float(p.max()), 6)}
            for s, p in zip(sentences, probs)]


PREDICT = PredictStep(
    TASK, family="tao_launcher.nlp.model", net="tao_launcher.tasks.text_classification.model:TextClassifier",
    predict=predict, read_inputs=lambda spec: input_items(spec, data.read_sentences), rows=rows,
    line=lambda r: f"{r['label']}\t{r['score']:.4f}\t{r['sentence']}", read_labelled=read_labelled, score=score)
evaluate, infer, infer_onnx, export = PREDICT.subtasks(EvaluateSpec, InferSpec, InferOnnxSpec, ExportSpec)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    counts = data.convert(spec.dataset_name, Path(spec.source_data_dir), Path(spec.target_data_dir),
                          overwrite=run.overwrite)
    for name, count in counts.items():
        log.info("wrote %s/%s: %d lines", spec.target_data_dir, name, count)
    run.results.record({f"lines_{k.split('.')[0]}": v for k, v in counts.items()},
                       target_data_dir=spec.target_data_dir)
    return counts
