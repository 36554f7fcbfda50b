"""punctuation_and_capitalization subtasks, one typed function each: ``fn(spec, run) -> metrics``.

Each word gets two labels on its first sub-token: the punctuation after it and its case. Long
texts become windows (nlp/tokens.py): training windows do not overlap, inference windows overlap
by ``margin`` words (NeMo's step/margin), so no word is dropped. Data formats: data.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence, Tuple

from tao_launcher.errors import DataError, UsageError
from tao_launcher.nlp import subtasks as nlp
from tao_launcher.registry import RunContext
from tao_launcher.tasks.punctuation_and_capitalization import data
from tao_launcher.tasks.punctuation_and_capitalization.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, FinetuneSpec, InferOnnxSpec, InferSpec, TrainSpec)

TASK = "punctuation_and_capitalization"
log = logging.getLogger("tao.punctuation_and_capitalization")
# torch, transformers and Lightning are imported inside the subtasks that use them: dataset_convert
# imports neither, evaluate/infer/export no Lightning (tests/test_import_cost.py)

if TYPE_CHECKING:
    from tao_launcher.core.inference import Runner


def read(data_dir: str, ds, config: Dict, model=None):
    """The examples of ``ds``; with ``model`` (finetune, evaluate) the label sets are that archive's."""
    folder = nlp.data_folder(data_dir)
    fix = (f"the model in {model} knows only these marks: fix the label, or train a new model on this label set"
           if model else None)
    return data.read_examples(folder / ds.text_file, folder / ds.labels_file, ds.num_samples,
                              config["punct_labels"], config["capit_labels"], mark_fix=fix)


def _check_weight(weight: float) -> float:
    if not 0.0 <= weight <= 1.0:
        raise UsageError(f"model.punct_loss_weight={weight} is outside 0..1: the loss is w * punctuation + "
                         f"(1 - w) * capitalization")
    return weight


def _load(run: RunContext):
    """Network, tokenizer and model config of the ``-m`` archive."""
    from tao_launcher.nlp.model import load_run_model
    from tao_launcher.tasks.punctuation_and_capitalization.model import PunctCapitModel

    return load_run_model(run, TASK, PunctCapitModel)


def train(spec: TrainSpec, run: RunContext) -> Dict:
    from tao_launcher.nlp.encoder import pretrained
    from tao_launcher.tasks.punctuation_and_capitalization.model import PunctCapitModel
    from tao_launcher.tasks.punctuation_and_capitalization.training import fit

    m = spec.model
    folder = nlp.data_folder(spec.data_dir)
    weight = _check_weight(m.punct_loss_weight)
    punct = data.read_label_ids(Path(m.punct_label_ids) if m.punct_label_ids else folder / data.PUNCT_LABEL_IDS)
    capit = data.read_label_ids(Path(m.capit_label_ids) if m.capit_label_ids else folder / data.CAPIT_LABEL_IDS)
    if len(punct) < 2 or punct[0] != "O" or "U" not in capit:
        raise DataError(f"the label sets must have O first and at least one mark among the punctuation labels, and U "
                        f"among the case labels "
                        f"(got {' '.join(punct)} and {' '.join(capit)}): rewrite them with dataset_convert")
    encoder, tokenizer = pretrained(m.language_model)
    config = {"punct_labels": punct, "capit_labels": capit, "max_seq_length": m.dataset.max_seq_length,
              "punct_num_fc_layers": m.punct_head.num_fc_layers, "punct_fc_dropout": m.punct_head.fc_dropout,
              "capit_num_fc_layers": m.capit_head.num_fc_layers, "capit_fc_dropout": m.capit_head.fc_dropout,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return fit(PunctCapitModel(encoder, config), tokenizer, spec.training_ds, spec.validation_ds, weight, spec, run)


def finetune(spec: FinetuneSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.punctuation_and_capitalization.training import fit

    net, tokenizer, _ = _load(run)
    return fit(net, tokenizer, spec.finetuning_ds, spec.validation_ds, _check_weight(spec.model.punct_loss_weight),
                spec, run)


# ----------------------------------------------------------------------------- inference

def predict_labels(runner: Runner, tokenizer, config: Dict, sentences: Sequence[Sequence[str]], batch_size: int,
                   margin: int) -> Tuple[List[List[str]], List[List[str]]]:
    """Punctuation and case labels of every word, from the torch or the onnxruntime runner."""
    from tao_launcher.nlp.tokens import predict_words

    punct_logits, capit_logits = predict_words(runner, tokenizer, sentences, config["max_seq_length"], batch_size,
                                               margin)
    punct = [[config["punct_labels"][int(w.argmax())] for w in s] for s in punct_logits]
    capit = [[config["capit_labels"][int(w.argmax())] for w in s] for s in capit_logits]
    return punct, capit


def evaluate(spec: EvaluateSpec, run: RunContext) -> Dict:
    import torch

    from tao_launcher.core.metrics import classification_report, confusion_matrix, format_report
    from tao_launcher.core.inference import torch_runner
    from tao_launcher.tasks.punctuation_and_capitalization.model import punct_capit_f1

    net, tokenizer, config = _load(run)
    words, gold_punct, gold_capit = read(spec.data_dir, spec.test_ds, config, run.model)
    punct, capit = predict_labels(torch_runner(net), tokenizer, config, words, spec.test_ds.batch_size, margin=16)
    reports = {}
    for name, labels, gold, pred in (("punctuation", config["punct_labels"], gold_punct, punct),
                                     ("capitalization", config["capit_labels"], gold_capit, capit)):
        index = {label: i for i, label in enumerate(labels)}
        matrix = confusion_matrix(torch.tensor([index[x] for s in pred for x in s]),
                                  torch.tensor([index[x] for s in gold for x in s]), len(labels))
        reports[name] = classification_report(matrix, labels)
        reports[name]["confusion_matrix"] = matrix.tolist()
        from tao_launcher.core.plots import save_confusion_matrix
        save_confusion_matrix(run, matrix, labels, f"confusion_matrix_{name}.png", f"{name} per word")
        print(f"{name}:\n{format_report(reports[name], labels)}\n", flush=True)
    punct_f1, capit_f1 = punct_capit_f1(reports["punctuation"], reports["capitalization"], config["punct_labels"])
    out = run.results.path / "evaluation_report.json"
    out.write_text(json.dumps(reports, indent=2))
    metrics = {"test_punct_f1": punct_f1, "test_capit_f1": capit_f1,
               "test_punct_acc": reports["punctuation"]["accuracy"], "test_capit_acc": reports["capitalization"]["accuracy"]}
    print(f"punctuation F1 (macro over {' '.join(config['punct_labels'][1:])}): {punct_f1:.4f}   "
          f"capitalization F1 (U): {capit_f1:.4f}", flush=True)
    run.results.record(metrics, report=out)
    return metrics


def _restore_and_report(run: RunContext, runner: Runner, tokenizer, config: Dict, texts: List[str], spec) -> Dict:
    if spec.margin < 0:
        raise UsageError(f"margin={spec.margin} must be 0 or more (words of context on each side)")
    words = [data.normalize_input(t) for t in texts]
    if not all(words):
        raise DataError("a text to punctuate has no words: every input_batch item and input_file line needs one")
    punct, capit = predict_labels(runner, tokenizer, config, words, spec.batch_size, spec.margin)
    rows = [{"text": t, "restored": data.restore(w, p, c)} for t, w, p, c in zip(texts, words, punct, capit)]
    (run.results.path / "infer_results.txt").write_text("".join(r["restored"] + "\n" for r in rows), encoding="utf-8")
    return nlp.print_and_save(run, rows, lambda r: r["restored"])


def infer(spec: InferSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import torch_runner

    texts = nlp.input_texts(spec, data.read_texts, "texts")
    net, tokenizer, config = _load(run)
    return _restore_and_report(run, torch_runner(net), tokenizer, config, texts, spec)


def infer_onnx(spec: InferOnnxSpec, run: RunContext) -> Dict:
    from tao_launcher.core.inference import onnx_runner
    from tao_launcher.nlp.model import load_export

    texts = nlp.input_texts(spec, data.read_texts, "texts")
    model_bytes, tokenizer, config = load_export(run.model, run.key, TASK)
    return _restore_and_report(run, onnx_runner(model_bytes), tokenizer, config, texts, spec)


def export(spec: ExportSpec, run: RunContext) -> Dict:
    from tao_launcher.tasks.punctuation_and_capitalization.model import PunctCapitModel

    return nlp.export(spec, run, TASK, PunctCapitModel)


def dataset_convert(spec: DatasetConvertSpec, run: RunContext) -> Dict:
    counts = data.convert(Path(spec.source_data_dir), Path(spec.target_data_dir), spec.dev_ratio,
                          spec.punct_marks, spec.seed)
    for name, count in counts.items():
        log.info("%s: %d", name, count)
    run.results.record({k.split(".")[0]: v for k, v in counts.items()}, target_data_dir=spec.target_data_dir)
    return counts
