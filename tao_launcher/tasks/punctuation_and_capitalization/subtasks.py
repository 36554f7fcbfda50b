"""punctuation_and_capitalization subtasks, one typed function each: ``fn(spec, run) -> metrics``.

Each word gets two labels on its first sub-token: the punctuation after it and its case. Long
texts become windows (nlp/tokens.py): training windows do not overlap, inference windows overlap
by ``margin`` words (NeMo's step/margin), so no word is dropped. Data formats: data.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

from tao_launcher.core.predict import Loaded, PredictStep, Scored, input_items, write_lines
from tao_launcher.errors import DataError
from tao_launcher.registry import RunContext
from tao_launcher.tasks.punctuation_and_capitalization import data
from tao_launcher.tasks.punctuation_and_capitalization.data import TASK, log
from tao_launcher.tasks.punctuation_and_capitalization.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

# torch, transformers and Lightning are imported inside the functions that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/nlp/test_import_cost.py)
EVALUATE_MARGIN = 16  # evaluate's words of context on each side of a window (infer's default margin)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.punctuation_and_capitalization.model import PunctCapitModel
    from tao_launcher.tasks.punctuation_and_capitalization.training import fit

    m = spec.model
    punct, capit = data.read_label_sets(spec.data_dir, m.punct_label_ids, m.capit_label_ids)
    encoder, tokenizer = pretrained(m.language_model)
    config = {"punct_labels": punct, "capit_labels": capit, "max_seq_length": m.dataset.max_seq_length,
              "punct_num_fc_layers": m.punct_head.num_fc_layers, "punct_fc_dropout": m.punct_head.fc_dropout,
              "capit_num_fc_layers": m.capit_head.num_fc_layers, "capit_fc_dropout": m.capit_head.fc_dropout,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return fit(PunctCapitModel(encoder, config), tokenizer, spec.training_ds, spec.validation_ds,
               m.punct_loss_weight, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.punctuation_and_capitalization.training import fit

    net, tokenizer, _ = PREDICT.load_trained(run)
    return fit(net, tokenizer, spec.finetuning_ds, spec.validation_ds, spec.model.punct_loss_weight, spec, run)


# ----------------------------------------------------------------------------- predict step

def predict(model: Loaded, inputs: Sequence, batch_size: int, spec) -> List[data.Line]:
    """(words, punctuation labels, case labels) of each input, from the torch or the onnxruntime runner.
    infer's inputs are texts, read by the word rule (data.normalize_input); evaluate's are the data's words."""
    from tao_launcher.nlp.tokens import predict_words

    sentences = [data.normalize_input(x) if isinstance(x, str) else x for x in inputs]
    if not all(sentences):
        raise DataError("a text to punctuate has no words: every input_batch item and input_file line needs one")
    config = model.config
    punct_logits, capit_logits = predict_words(model.runner, model.processor, sentences, config["max_seq_length"],
                                               batch_size, getattr(spec, "margin", EVALUATE_MARGIN))

    def labels(logits, names: List[str]) -> List[List[str]]:
        return [[names[int(word.argmax())] for word in sentence] for sentence in logits]

    return list(zip(sentences, labels(punct_logits, config["punct_labels"]),
                    labels(capit_logits, config["capit_labels"])))


def read_labelled(spec: EvaluateSpec, model: Loaded):
    words, punct, capit = data.read_split(spec.data_dir, spec.test_ds, model.config, f"the model in {model.source}")
    return words, (punct, capit)


def score(words, gold, answers: List[data.Line], model: Loaded, spec: EvaluateSpec, run: RunContext) -> Scored:
    """Per head, the per-word report with its confusion matrix (and a plot of it); the task's two F1 figures."""
    import torch

    from tao_launcher.core.metrics import classification_report, confusion_matrix, format_report
    from tao_launcher.core.plots import save_confusion_matrix
    from tao_launcher.tasks.punctuation_and_capitalization.model import punct_capit_f1

    config = model.config
    reports, text = {}, []
    for head, (name, labels) in enumerate((("punctuation", config["punct_labels"]),
                                           ("capitalization", config["capit_labels"]))):
        index = {label: i for i, label in enumerate(labels)}
        matrix = confusion_matrix(torch.tensor([index[x] for answer in answers for x in answer[head + 1]]),
                                  torch.tensor([index[x] for sentence in gold[head] for x in sentence]), len(labels))
        reports[name] = {**classification_report(matrix, labels), "confusion_matrix": matrix.tolist()}
        save_confusion_matrix(run, matrix, labels, f"confusion_matrix_{name}.png", f"{name} per word")
        text.append(f"{name}:\n{format_report(reports[name], labels)}\n")
    punct_f1, capit_f1 = punct_capit_f1(reports["punctuation"], reports["capitalization"], config["punct_labels"])
    text.append(f"punctuation F1 (macro over {' '.join(config['punct_labels'][1:])}): {punct_f1:.4f}   "
                f"capitalization F1 (U): {capit_f1:.4f}")
    metrics = {"test_punct_f1": punct_f1, "test_capit_f1": capit_f1,
               "test_punct_acc": reports["punctuation"]["accuracy"],
               "test_capit_acc": reports["capitalization"]["accuracy"]}
    return Scored(metrics, reports, "\n".join(text))


def rows(texts: List[str], answers: List[data.Line], model: Loaded, run: RunContext) -> List[Dict]:
    """A row per text; the restored texts also go to infer_results.txt, one a line."""
    return [{"text": text, "restored": data.restore(*answer)} for text, answer in zip(texts, answers)]


PREDICT = PredictStep(
    TASK, family="tao_launcher.nlp.model",
    net="tao_launcher.tasks.punctuation_and_capitalization.model:PunctCapitModel", predict=predict,
    read_inputs=lambda spec: input_items(spec, data.read_texts, "texts", data.normalize_input), rows=rows,
    line=lambda r: r["restored"], read_labelled=read_labelled, score=score, write_files=write_lines("restored"))
evaluate, infer, infer_onnx, export = PREDICT.subtasks(EvaluateSpec, InferSpec, InferOnnxSpec, ExportSpec)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    counts = data.convert(Path(spec.source_data_dir), Path(spec.target_data_dir), spec.dev_ratio,
                          spec.punct_marks, spec.seed, overwrite=run.overwrite)
    for name, count in counts.items():
        log.info("%s: %d", name, count)
    run.results.record({k.split(".")[0]: v for k, v in counts.items()}, target_data_dir=spec.target_data_dir)
    return counts
