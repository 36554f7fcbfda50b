"""intent_slot_classification subtasks, one typed function each: ``fn(spec, run) -> metrics``.

One encoder, two heads: the intent of the utterance (from the sentence vector) and a slot tag for every
word (on its first sub-token). Utterances longer than ``max_seq_length`` become several windows
(nlp/tokens.py): every word gets its tag, and the intent is the mean of the windows' intent logits. UNK (the
id dataset_convert gives labels unseen in training) is never predicted. Data formats: data.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence, Tuple

from tao_launcher.errors import DataError
from tao_launcher.nlp import subtasks as nlp
from tao_launcher.registry import RunContext
from tao_launcher.tasks.intent_slot_classification import data
from tao_launcher.tasks.intent_slot_classification.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

TASK = "intent_slot_classification"
MAIN_METRIC = "val_slot_f1"  # picks the kept model unless trainer.monitor says otherwise
INFER_MARGIN = 16  # words of context on each side where a long utterance is split into windows
log = logging.getLogger("tao.intent_slot_classification")
# torch, transformers and Lightning are imported inside the subtasks that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/test_import_cost.py)

if TYPE_CHECKING:
    from tao_launcher.core.inference import Runner


def read(data_dir: str, ds, config: Dict):
    """Words, intent ids and slot ids of ``<ds.prefix>.tsv`` / ``<ds.prefix>_slots.tsv`` in data_dir.

    Ids mean the model's labels: dicts in data_dir that say otherwise are an error, not a silent mix-up."""
    folder = nlp.data_folder(data_dir)
    for name, what, labels in ((data.INTENTS_DICT, "intent", config["intent_labels"]),
                               (data.SLOTS_DICT, "slot", config["slot_labels"])):
        if (folder / name).is_file() and data.read_dict(folder / name, what) != labels:
            raise DataError(f"{folder / name} differs from the {what} labels of the model ({len(labels)}: "
                            f"{' '.join(labels[:5])} ...), so the ids in {ds.prefix}.tsv would name other labels: "
                            f"use data converted with the model's dicts, or finetune on this data first")
    return data.read_examples(folder, ds.prefix, ds.num_samples, config["intent_labels"], config["slot_labels"])


def _label_sets(class_labels, data_dir: str) -> Tuple[List[str], List[str]]:
    folder = nlp.data_folder(data_dir)
    intents = data.read_dict(Path(class_labels.intent_labels_file) if class_labels.intent_labels_file
                             else folder / data.INTENTS_DICT, "intent")
    slots = data.read_dict(Path(class_labels.slot_labels_file) if class_labels.slot_labels_file
                           else folder / data.SLOTS_DICT, "slot")
    return intents, slots


def _load(run: RunContext):
    """Network, tokenizer and model config of the ``-m`` archive."""
    from tao_launcher.nlp.model import load_run_model
    from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel

    return load_run_model(run, TASK, IntentSlotModel)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel
    from tao_launcher.tasks.intent_slot_classification.training import fit

    m = spec.model
    intents, slots = _label_sets(m.class_labels, spec.data_dir)
    encoder, tokenizer = pretrained(m.language_model)
    config = {"intent_labels": intents, "slot_labels": slots, "max_seq_length": m.dataset.max_seq_length,
              "pooling": m.intent_head.pooling, "intent_num_fc_layers": m.intent_head.num_output_layers,
              "intent_fc_dropout": m.intent_head.fc_dropout, "slot_num_fc_layers": m.slot_head.num_output_layers,
              "slot_fc_dropout": m.slot_head.fc_dropout,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return fit(IntentSlotModel(encoder, config), tokenizer, spec.training_ds, spec.validation_ds,
               m.intent_loss_weight, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    """Continue training the -m model; data_dir's dicts, when they differ from the model's, get new heads."""
    from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel
    from tao_launcher.tasks.intent_slot_classification.training import fit

    net, tokenizer, config = _load(run)
    folder = nlp.data_folder(spec.data_dir)
    if (folder / data.INTENTS_DICT).is_file() and (folder / data.SLOTS_DICT).is_file():
        intents = data.read_dict(folder / data.INTENTS_DICT, "intent")
        slots = data.read_dict(folder / data.SLOTS_DICT, "slot")
        if (intents, slots) != (config["intent_labels"], config["slot_labels"]):
            log.info("the label sets of %s differ from the model's: new intent and slot heads on the trained encoder",
                     folder)
            net = IntentSlotModel(net.encoder, {**config, "intent_labels": intents, "slot_labels": slots})
    return fit(net, tokenizer, spec.finetuning_ds, spec.validation_ds, spec.model.intent_loss_weight, spec, run)


# ----------------------------------------------------------------------------- inference

def predict(runner: Runner, tokenizer, config: Dict, sentences: Sequence[Sequence[str]], batch_size: int):
    """Per utterance: intent probabilities (UNK excluded) and the slot tag of every word (decoded as the model
    config says: ``nlp.bio``), from the torch or the onnxruntime runner (one path, so infer and infer_onnx
    agree)."""
    import numpy as np

    from tao_launcher.nlp import bio
    from tao_launcher.nlp.inference import softmax
    from tao_launcher.nlp.tokens import predict_words
    from tao_launcher.tasks.intent_slot_classification.model import mask_unk

    intent_logits, slot_logits = predict_words(runner, tokenizer, sentences, config["max_seq_length"], batch_size,
                                               INFER_MARGIN)
    probs = [softmax(mask_unk(row, config["intent_labels"])) for row in intent_logits]
    names, constrained = config["slot_labels"], config.get(bio.CONFIG_KEY, False)
    rows = [np.asarray(sentence, dtype=np.float32).reshape(len(sentence), len(names)) for sentence in slot_logits]
    tags = [[names[i] for i in bio.decode(mask_unk(row, names), names, constrained)] for row in rows]
    return probs, tags


def evaluate(spec: EvaluateSpec, run: RunContext) -> Dict:
    import torch

    from tao_launcher.core.metrics import (
        classification_report, confusion_matrix, format_report, format_span_report, span_report)
    from tao_launcher.core.plots import save_confusion_matrix
    from tao_launcher.core.inference import torch_runner

    net, tokenizer, config = _load(run)
    intents, slots = config["intent_labels"], config["slot_labels"]
    words, gold_intents, gold_slots = read(spec.data_dir, spec.test_ds, config)
    probs, tags = predict(torch_runner(net), tokenizer, config, words, spec.test_ds.batch_size)
    pred_intents = [int(p.argmax()) for p in probs]  # never UNK: an UNK gold intent is an error
    matrix = confusion_matrix(torch.tensor(pred_intents), torch.tensor(gold_intents), len(intents))
    intent_report = classification_report(matrix, intents)
    slot_report = span_report([[slots[i] for i in s] for s in gold_slots], tags)
    report = {"intents": intent_report,
              "intent_confusion_matrix": {"labels": intents, "rows_gold_columns_predicted": matrix.tolist()},
              "slots": slot_report, "utterances": len(words)}
    out = run.results.path / "evaluation_report.json"
    out.write_text(json.dumps(report, indent=2))
    save_confusion_matrix(run, matrix, intents, title=f"{TASK}: intents of {spec.test_ds.prefix}.tsv")
    print(f"intents:\n{format_report(intent_report, intents)}\n\nslots:\n{format_span_report(slot_report)}\n",
          flush=True)
    micro = slot_report["micro"]
    metrics = {"test_intent_acc": intent_report["accuracy"], "test_slot_f1": micro["f1"],
               "test_slot_precision": micro["precision"], "test_slot_recall": micro["recall"],
               "test_intent_macro_f1": intent_report["macro_f1"]}
    print(f"intent accuracy: {metrics['test_intent_acc']:.4f}   slot F1 (micro, spans): {micro['f1']:.4f}   "
          f"({len(words)} utterances of {spec.test_ds.prefix}.tsv)", flush=True)
    run.results.record(metrics, report=out)
    return metrics


def _describe(row: Dict) -> str:
    slots = " | ".join(f"{s['slot']}: {s['text']}" for s in row["slots"]) or "(none)"
    return f"{row['text']}\n  intent: {row['intent']} ({row['intent_probability']:.4f})\n  slots: {slots}"


def _infer_and_report(run: RunContext, runner: Runner, tokenizer, config: Dict, texts: List[str], spec) -> Dict:
    sentences = [t.split() for t in texts]
    if not all(sentences):
        raise DataError("an utterance is empty: every input_batch item and input_file line needs a word")
    probs, tags = predict(runner, tokenizer, config, sentences, spec.batch_size)
    rows = []
    for text, words, p, t in zip(texts, sentences, probs, tags):
        best = int(p.argmax())
        rows.append({"text": text, "intent": config["intent_labels"][best],
                     "intent_probability": round(float(p[best]), 4), "slots": data.slot_spans(words, t),
                     "slot_tags": t})
    return nlp.print_and_save(run, rows, _describe)


def infer(spec: InferSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import torch_runner

    texts = nlp.input_texts(spec, data.read_utterances, "utterances")
    net, tokenizer, config = _load(run)
    return _infer_and_report(run, torch_runner(net), tokenizer, config, texts, spec)


def infer_onnx(spec: InferOnnxSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import onnx_runner
    from tao_launcher.nlp.model import load_export

    texts = nlp.input_texts(spec, data.read_utterances, "utterances")
    model_bytes, tokenizer, config = load_export(run.model, run.key, TASK)
    return _infer_and_report(run, onnx_runner(model_bytes), tokenizer, config, texts, spec)


def export(spec: ExportSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel

    return nlp.export(spec, run, TASK, IntentSlotModel)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    summary = data.convert(spec.dataset_name, Path(spec.source_data_dir), Path(spec.target_data_dir))
    for name, value in summary.items():
        log.info("%s: %s", name, value)
    run.results.record({k: v for k, v in summary.items() if isinstance(v, int)}, target_data_dir=spec.target_data_dir)
    return summary
