"""The plumbing every NLP task's subtasks share: fit-and-save, export, and reading the inputs of infer.

A task's ``subtasks.py`` builds its network, its LightningModule and its DataModule, and
calls ``fit_and_save``; its export is ``export`` with its network class. What differs between
tasks (data, heads, metrics, decoding) stays in the task.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Type

import pytorch_lightning as pl

from tao_launcher.core import trainer as core_trainer
from tao_launcher.core.model import write_model_archive
from tao_launcher.core.results import is_worker_process
from tao_launcher.errors import DataError, UsageError
from tao_launcher.nlp.model import EncoderNet, load_model, write_payload

ARCHIVE_NAME = "trained-model.tao"
log = logging.getLogger("tao.nlp")


def fit_and_save(task: str, module, datamodule: pl.LightningDataModule, tokenizer, spec, run,
                 main_metric: str) -> Dict:
    """The one training path of train and finetune: Lightning fit (resumable), then the final archive.

    ``module.net`` is the ``EncoderNet`` that goes into ``checkpoints/trained-model.tao``.
    """
    trainer = core_trainer.build_trainer(spec.trainer, run.results, run.gpus)
    core_trainer.fit(trainer, module, datamodule, run.results)
    if trainer.interrupted:
        raise KeyboardInterrupt
    metrics = {k: round(float(v), 6) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if trainer.global_rank == 0 and not is_worker_process():
        archive = run.results.checkpoints / ARCHIVE_NAME
        write_model_archive(archive, run.key, kind="tao", task=task, metrics=metrics,
                            write_payload=lambda folder: write_payload(folder, module.net, tokenizer))
        run.results.record(metrics, model=archive)
        log.info("wrote %s (%s %.4f)", archive, main_metric, metrics.get(main_metric, float("nan")))
        core_trainer.discard_resume_checkpoint(run.results)
    return metrics


def export(spec, run, task: str, net_cls: Type[EncoderNet]) -> Dict:
    """export_format=ONNX (encrypted .eonnx) or RIVA (.riva): model.onnx, tokenizer, config, label files."""
    from tao_launcher.core.onnx_export import export_onnx, riva_config

    kind = "riva" if spec.export_format == "RIVA" else "eonnx"
    name = spec.export_to or f"exported-model.{kind}"
    if "/" in name:
        raise UsageError(f"export_to is a file name inside the results folder, got {name!r}")
    dest = run.results.path / name
    net, tokenizer, _ = load_model(run.model, run.key, task, net_cls)

    def payload(out: Path) -> None:
        export_onnx(net, out / "model.onnx", opset=spec.onnx_opset)
        write_payload(out, net, tokenizer, weights=False)
        if kind == "riva":
            (out / "riva_config.yaml").write_text(riva_config(task, net))

    write_model_archive(dest, run.key, kind=kind, task=task, metrics=None, write_payload=payload)
    run.results.record(model=dest)
    log.info("exported %s", dest)
    return {}


def data_folder(data_dir: str) -> Path:
    """``data_dir`` of the word-level tasks, checked before anything reads from it."""
    folder = Path(data_dir)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(f"data_dir {folder} {what}: set data_dir= to the folder that dataset_convert wrote")
    return folder


def input_texts(spec, read_file: Callable[[str], List], what: str = "sentences") -> List:
    """infer's inputs: ``input_file`` when set, else ``input_batch``; an empty input says which one."""
    if spec.input_file:
        items = read_file(spec.input_file)
        if not items:
            raise UsageError(f"input_file {spec.input_file} holds no {what}: put one a line, or use input_batch")
        return items
    items = list(spec.input_batch)
    if not items:
        raise UsageError(f"input_batch is empty: give it a list of {what}, or set input_file")
    return items


def print_and_save(run, rows: Sequence[Dict], line: Callable[[Dict], str], name: str = "infer_results.json") -> Dict:
    """Print one line per prediction and save them all as JSON in the results folder."""
    import json

    for row in rows:
        print(line(row), flush=True)
    out = run.results.path / name
    out.write_text(json.dumps(list(rows), indent=2, ensure_ascii=False))
    run.results.record({"inputs": len(rows)}, predictions=out)
    return {"inputs": len(rows)}
