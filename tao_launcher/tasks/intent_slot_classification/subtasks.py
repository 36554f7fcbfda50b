"""intent_slot_classification subtasks, one typed function each: ``fn(spec, run) -> metrics``.

One encoder, two heads: the intent of the utterance (from the sentence vector) and a slot tag for every
word (on its first sub-token). Utterances longer than ``max_seq_length`` become several windows
(nlp/tokens.py): every word gets its tag, and the intent is the mean of the windows' intent logits. UNK (the
id dataset_convert gives labels unseen in training) is never predicted. Data formats: data.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from tao_launcher.core.predict import Loaded, PredictStep, Scored, input_items
from tao_launcher.core.textfiles import data_folder
from tao_launcher.registry import RunContext
from tao_launcher.tasks.intent_slot_classification import data
from tao_launcher.tasks.intent_slot_classification.data import TASK, log
from tao_launcher.tasks.intent_slot_classification.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

# torch, transformers and Lightning are imported inside the functions that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/nlp/test_import_cost.py)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel
    from tao_launcher.tasks.intent_slot_classification.training import fit

    m = spec.model
    intents, slots = data.label_sets(m.class_labels, spec.data_dir)
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

    net, tokenizer, config = PREDICT.load_trained(run)
    folder = data_folder(spec.data_dir)
    if (folder / data.INTENTS_DICT).is_file() and (folder / data.SLOTS_DICT).is_file():
        intents = data.read_dict(folder / data.INTENTS_DICT, "intent")
        slots = data.read_dict(folder / data.SLOTS_DICT, "slot")
        if (intents, slots) != (config["intent_labels"], config["slot_labels"]):
            log.info("the label sets of %s differ from the model's: new intent and slot heads on the trained encoder",
                     folder)
            net = IntentSlotModel(net.encoder, {**config, "intent_labels": intents, "slot_labels": slots})
    return fit(net, tokenizer, spec.finetuning_ds, spec.validation_ds, spec.model.intent_loss_weight, spec, run)


# ----------------------------------------------------------------------------- predict step

def predict(model: Loaded, texts: List[str], batch_size: int, spec=None) -> Tuple[List, List[List[str]]]:
    """Per utterance (words separated by spaces): intent probabilities (UNK excluded) and the slot tag of every
    word (UNK excluded, decoded as the model config says: nlp/bio.py)."""
    from tao_launcher.nlp import bio
    from tao_launcher.nlp.inference import softmax
    from tao_launcher.nlp.tokens import predict_texts
    from tao_launcher.tasks.intent_slot_classification.model import mask_unk

    intents, slots = model.config["intent_labels"], model.config["slot_labels"]
    intent_logits, slot_logits = predict_texts(model, texts, batch_size)
    probs = [softmax(mask_unk(row, intents)) for row in intent_logits]
    return probs, bio.decode_words(slot_logits, slots, model.config, mask=lambda logits: mask_unk(logits, slots))


def read_labelled(spec: EvaluateSpec, model: Loaded):
    words, intents, slots = data.read(spec.data_dir, spec.test_ds, model.config)
    return [" ".join(utterance) for utterance in words], (intents, slots)


def score(texts, gold, answers, model: Loaded, spec: EvaluateSpec, run: RunContext) -> Scored:
    import torch

    from tao_launcher.core.metrics import (
        classification_report, confusion_matrix, format_report, format_span_report, span_report)
    from tao_launcher.core.plots import save_confusion_matrix

    intents, slots = model.config["intent_labels"], model.config["slot_labels"]
    (gold_intents, gold_slots), (probs, tags) = gold, answers
    pred_intents = [int(p.argmax()) for p in probs]  # never UNK: an UNK gold intent is an error
    matrix = confusion_matrix(torch.tensor(pred_intents), torch.tensor(gold_intents), len(intents))
    intent_report = classification_report(matrix, intents)
    slot_report = span_report([[slots[i] for i in s] for s in gold_slots], tags)
    report = {"intents": intent_report,
              "intent_confusion_matrix": {"labels": intents, "rows_gold_columns_predicted": matrix.tolist()},
              "slots": slot_report, "utterances": len(texts)}
    save_confusion_matrix(run, matrix, intents, title=f"{TASK}: intents of {spec.test_ds.prefix}.tsv")
    micro = slot_report["micro"]
    metrics = {"test_intent_acc": intent_report["accuracy"], "test_slot_f1": micro["f1"],
               "test_slot_precision": micro["precision"], "test_slot_recall": micro["recall"],
               "test_intent_macro_f1": intent_report["macro_f1"]}
    text = (f"intents:\n{format_report(intent_report, intents)}\n\nslots:\n{format_span_report(slot_report)}\n\n"
            f"intent accuracy: {metrics['test_intent_acc']:.4f}   slot F1 (micro, spans): {micro['f1']:.4f}   "
            f"({len(texts)} utterances of {spec.test_ds.prefix}.tsv)")
    return Scored(metrics, report, text)


def rows(texts: List[str], answers, model: Loaded, run: RunContext) -> List[Dict]:
    out = []
    for text, p, tags in zip(texts, *answers):
        best = int(p.argmax())
        out.append({"text": text, "intent": model.config["intent_labels"][best],
                    "intent_probability": round(float(p[best]), 4), "slots": data.slot_spans(text.split(), tags),
                    "slot_tags": tags})
    return out


def line(row: Dict) -> str:
    slots = " | ".join(f"{s['slot']}: {s['text']}" for s in row["slots"]) or "(none)"
    return f"{row['text']}\n  intent: {row['intent']} ({row['intent_probability']:.4f})\n  slots: {slots}"


PREDICT = PredictStep(
    TASK, family="tao_launcher.nlp.model", net="tao_launcher.tasks.intent_slot_classification.model:IntentSlotModel",
    predict=predict, read_inputs=lambda spec: input_items(spec, data.read_utterances, "utterances"), rows=rows,
    line=line, read_labelled=read_labelled, score=score)
evaluate, infer, infer_onnx, export = PREDICT.subtasks(EvaluateSpec, InferSpec, InferOnnxSpec, ExportSpec)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    summary = data.convert(spec.dataset_name, Path(spec.source_data_dir), Path(spec.target_data_dir),
                           overwrite=run.overwrite)
    for name, value in summary.items():
        log.info("%s: %s", name, value)
    run.results.record({k: v for k, v in summary.items() if isinstance(v, int)}, target_data_dir=spec.target_data_dir)
    return summary
