"""text_classification subtasks, one function each, run by the entrypoint as ``fn(spec, run)``.

``spec`` is the resolved schema of ``spec.py``; ``run`` is the ``RunContext`` (results
folder, key, -m model, -g devices). Training, checkpoints and archives come from the core.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch

from tao_launcher.core import trainer as core_trainer
from tao_launcher.core.data import LengthBucketBatchSampler, length_sorted_batches, pad_batch
from tao_launcher.core.encoders import resolve_encoder
from tao_launcher.core.metrics import classification_report, confusion_matrix, format_report
from tao_launcher.core.model import opened_model_archive, write_model_archive
from tao_launcher.core.results import is_worker_process
from tao_launcher.errors import UsageError
from tao_launcher.tasks.text_classification import data
from tao_launcher.tasks.text_classification.model import (
    TextClassificationModule, TextClassifier, load_encoder)

TASK = "text_classification"
ARCHIVE_NAME = "trained-model.tao"
log = logging.getLogger("tao.text_classification")


# ----------------------------------------------------------------------------- model files

def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), use_fast=True)


def tokenize(tokenizer, sentences: Sequence[str], max_seq_length: int) -> List[List[int]]:
    return tokenizer(list(sentences), truncation=True, max_length=max_seq_length,
                     add_special_tokens=True)["input_ids"]


def save_tokenizer(tokenizer, folder: Path) -> None:
    """The tokenizer files plus vocab.txt, one token a line in id order (what Riva's tokenizer reads)."""
    tokenizer.save_pretrained(str(folder))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")


def write_payload(folder: Path, net: TextClassifier, tokenizer, config: Dict) -> None:
    """The files of a trained model (see core/model.py for the layout)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    net.encoder.config.save_pretrained(str(folder / "encoder"))
    save_tokenizer(tokenizer, folder / "tokenizer")
    (folder / "model_config.json").write_text(json.dumps(config, indent=2))
    (folder / "labels.txt").write_text("\n".join(config["label_names"]) + "\n")


def read_model(folder: Path) -> Tuple[TextClassifier, object, Dict]:
    """Rebuild the network, tokenizer and model config from an opened archive."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = json.loads((folder / "model_config.json").read_text())
    encoder = load_encoder(config=AutoConfig.from_pretrained(str(folder / "encoder")))
    net = TextClassifier(encoder, config["num_classes"], config["num_output_layers"], config["fc_dropout"],
                         config.get("pooling", "cls"))
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    net.eval()
    return net, load_tokenizer(folder / "tokenizer"), config


# ----------------------------------------------------------------------------- training

def _loader(ids: List[List[int]], labels: List[int], batch_size: int, shuffle: bool, seed: int,
            pad_id: int, num_workers: int, trainer=None, resumable: bool = False):
    rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
    sampler = LengthBucketBatchSampler([len(x) for x in ids], batch_size, shuffle, seed, rank, world)
    examples = list(zip(ids, labels))

    def collate(batch):
        out = pad_batch([x for x, _ in batch], pad_id)
        out["labels"] = torch.tensor([y for _, y in batch], dtype=torch.long)
        return out

    loader_cls = core_trainer.ResumableDataLoader if resumable else torch.utils.data.DataLoader
    return loader_cls(examples, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)


def _fit_and_save(net: TextClassifier, tokenizer, config: Dict, train_ds, val_ds, spec, run,
                  range_fix: str = data.LABEL_RANGE_FIX) -> Dict:
    """The one training path of train and finetune: data, Lightning fit, final archive."""
    label_names = config["label_names"]
    num_classes = config["num_classes"]
    max_len = config["max_seq_length"]
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
    module = TextClassificationModule(net, label_names, spec.optim, weights)
    trainer = core_trainer.build_trainer(spec.trainer, run.results, run.gpus)
    pad_id = tokenizer.pad_token_id or 0
    splits = {"train": (tokenize(tokenizer, train_x, max_len), train_y, train_ds, train_ds.shuffle),
              "validation": (tokenize(tokenizer, val_x, max_len), val_y, val_ds, False)}

    def make_loader(split: str, pl_trainer):
        ids, labels, ds, shuffle = splits[split]
        return _loader(ids, labels, ds.batch_size, shuffle, spec.trainer.seed, pad_id, ds.num_workers, pl_trainer,
                       resumable=split == "train")

    module.make_loader = make_loader
    core_trainer.fit(trainer, module, run.results)
    if trainer.interrupted:
        raise KeyboardInterrupt
    metrics = {k: round(float(v), 6) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if trainer.global_rank == 0 and not is_worker_process():
        archive = run.results.checkpoints / ARCHIVE_NAME
        write_model_archive(archive, run.key, kind="tao", task=TASK, metrics=metrics,
                            write_payload=lambda folder: write_payload(folder, module.net, tokenizer, config))
        run.results.record(metrics, model=archive)
        log.info("wrote %s (val_acc %.4f)", archive, metrics.get("val_acc", float("nan")))
        core_trainer.discard_resume_checkpoint(run.results)
    return metrics


def load_encoder_checkpoint(encoder, path: Path) -> None:
    """Encoder weights from a safetensors file; every weight must fit (no silent partial load)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise UsageError(f"lm_checkpoint {path} does not exist: check model.language_model.lm_checkpoint")
    try:
        weights = load_file(str(path))
    except SafetensorError as err:
        raise UsageError(f"lm_checkpoint {path} is not a safetensors file ({err})") from None
    # not used by us: the pooler (the head pools the hidden states itself) and position_ids (a buffer newer transformers rebuild)
    ignored = ("pooler.",) if getattr(encoder, "pooler", None) is None else ()
    weights = {k: v for k, v in weights.items() if not k.startswith(ignored) and not k.endswith("position_ids")}
    try:
        result = encoder.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise UsageError(f"lm_checkpoint {path} does not fit the encoder: {str(err).splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        raise UsageError(f"lm_checkpoint {path} does not fit the encoder "
                         f"{encoder.config.model_type}: {len(result.missing_keys)} weights missing "
                         f"(e.g. {', '.join(result.missing_keys[:2]) or '-'}), {len(result.unexpected_keys)} unexpected "
                         f"(e.g. {', '.join(result.unexpected_keys[:2]) or '-'})")


def train(spec, run) -> Dict:
    core_trainer.seed_everything(spec.trainer.seed)  # before the head's weights are drawn
    m = spec.model
    label_names = data.read_label_names(m.class_labels.class_labels_file, m.dataset.num_classes)
    encoder_dir = resolve_encoder(m.language_model.pretrained_model_name)
    log.info("encoder %s from %s", m.language_model.pretrained_model_name, encoder_dir)
    encoder = load_encoder(encoder_dir)
    if m.language_model.lm_checkpoint:
        load_encoder_checkpoint(encoder, Path(m.language_model.lm_checkpoint))
    net = TextClassifier(encoder, m.dataset.num_classes, m.classifier_head.num_output_layers,
                         m.classifier_head.fc_dropout, m.classifier_head.pooling)
    config = {"num_classes": m.dataset.num_classes, "label_names": label_names,
              "max_seq_length": m.dataset.max_seq_length, "class_balancing": m.dataset.class_balancing,
              "num_output_layers": m.classifier_head.num_output_layers, "fc_dropout": m.classifier_head.fc_dropout,
              "pooling": m.classifier_head.pooling,
              "pretrained_model_name": m.language_model.pretrained_model_name}
    return _fit_and_save(net, load_tokenizer(encoder_dir), config, spec.training_ds, spec.validation_ds, spec, run)


def finetune(spec, run) -> Dict:
    core_trainer.seed_everything(spec.trainer.seed)
    with opened_model_archive(run.model, run.key, TASK) as folder:
        net, tokenizer, config = read_model(folder)
    wanted = spec.model.class_labels.class_labels_file
    if wanted:
        names = data.read_label_names(wanted, config["num_classes"])
        if names != config["label_names"]:
            raise UsageError(f"the labels of {wanted} ({', '.join(names)}) do not match those of {run.model} "
                             f"({', '.join(config['label_names'])}): fine-tune on the same label set, or train "
                             f"a new model")
    fix = (f"the model in {run.model} has {config['num_classes']} classes "
           f"({', '.join(config['label_names'])}): fine-tune on data with the same label set")
    return _fit_and_save(net, tokenizer, config, spec.finetuning_ds, spec.validation_ds, spec, run, fix)


# ----------------------------------------------------------------------------- inference

def batched_probabilities(run_batch: Callable[[np.ndarray, np.ndarray], np.ndarray], tokenizer,
                          sentences: Sequence[str], max_seq_length: int, batch_size: int) -> np.ndarray:
    """Class probabilities in input order; batches of similar length keep padding small."""
    ids = tokenize(tokenizer, sentences, max_seq_length)
    pad_id = tokenizer.pad_token_id or 0
    probs = None
    for batch in length_sorted_batches([len(x) for x in ids], batch_size):
        padded = pad_batch([ids[i] for i in batch], pad_id)
        logits = run_batch(padded["input_ids"].numpy(), padded["attention_mask"].numpy())
        logits = logits - logits.max(-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(-1, keepdims=True)
        if probs is None:
            probs = np.zeros((len(sentences), p.shape[1]), dtype=np.float32)
        probs[batch] = p
    return probs


def torch_runner(net: TextClassifier):
    def run_batch(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
    return run_batch


def onnx_runner(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    def run_batch(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)})[0]
    return run_batch


def evaluate(spec, run) -> Dict:
    with opened_model_archive(run.model, run.key, TASK) as folder:
        net, tokenizer, config = read_model(folder)
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


def _report_predictions(spec, run, probs: np.ndarray, sentences: List[str], label_names: List[str]) -> Dict:
    results = [{"sentence": s, "label": label_names[int(p.argmax())], "score": round(float(p.max()), 6)}
               for s, p in zip(sentences, probs)]
    for r in results:
        print(f"{r['label']}\t{r['score']:.4f}\t{r['sentence']}", flush=True)
    out = run.results.path / "infer_results.json"
    out.write_text(json.dumps(results, indent=2))
    run.results.record({"sentences": len(results)}, predictions=out)
    return {"sentences": len(results)}


def _input_sentences(spec) -> List[str]:
    sentences = data.read_sentences(spec.input_file) if spec.input_file else list(spec.input_batch)
    if not sentences:
        raise UsageError("nothing to classify: set input_batch or input_file in the spec")
    return sentences


def infer(spec, run) -> Dict:
    sentences = _input_sentences(spec)
    with opened_model_archive(run.model, run.key, TASK) as folder:
        net, tokenizer, config = read_model(folder)
    probs = batched_probabilities(torch_runner(net), tokenizer, sentences, config["max_seq_length"], spec.batch_size)
    return _report_predictions(spec, run, probs, sentences, config["label_names"])


def infer_onnx(spec, run) -> Dict:
    sentences = _input_sentences(spec)
    with opened_model_archive(run.model, run.key, TASK, kinds=("eonnx", "riva")) as folder:
        model_bytes = (folder / "model.onnx").read_bytes()
        tokenizer = load_tokenizer(folder / "tokenizer")
        config = json.loads((folder / "model_config.json").read_text())
    probs = batched_probabilities(onnx_runner(model_bytes), tokenizer, sentences, config["max_seq_length"],
                                  spec.batch_size)
    return _report_predictions(spec, run, probs, sentences, config["label_names"])


# ----------------------------------------------------------------------------- export

def export(spec, run) -> Dict:
    from tao_launcher.core.onnx_export import export_onnx, riva_config

    kind = "riva" if spec.export_format == "RIVA" else "eonnx"
    name = spec.export_to or f"exported-model.{kind}"
    if "/" in name:
        raise UsageError(f"export_to is a file name inside the results folder, got {name!r}")
    dest = run.results.path / name
    with opened_model_archive(run.model, run.key, TASK) as folder:
        net, tokenizer, config = read_model(folder)

        def payload(out: Path) -> None:
            export_onnx(net, out / "model.onnx", input_names=["input_ids", "attention_mask"],
                        output_names=["logits"], vocab_size=tokenizer.vocab_size, opset=spec.onnx_opset)
            save_tokenizer(tokenizer, out / "tokenizer")
            (out / "model_config.json").write_text(json.dumps(config, indent=2))
            (out / "labels.txt").write_text("\n".join(config["label_names"]) + "\n")
            if kind == "riva":
                (out / "riva_config.yaml").write_text(riva_config(TASK, config))

        write_model_archive(dest, run.key, kind=kind, task=TASK, metrics=None, write_payload=payload)
    run.results.record(model=dest)
    log.info("exported %s", dest)
    return {}


def dataset_convert(spec, run) -> Dict:
    counts = data.convert(spec.dataset_name, Path(spec.source_data_dir), Path(spec.target_data_dir))
    for name, count in counts.items():
        log.info("wrote %s/%s: %d lines", spec.target_data_dir, name, count)
    run.results.record({f"lines_{k.split('.')[0]}": v for k, v in counts.items()},
                       target_data_dir=spec.target_data_dir)
    return counts
