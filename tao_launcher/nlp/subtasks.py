"""The plumbing every NLP task's subtasks share: fit-and-save, export, and reading the inputs of infer.

A task's ``subtasks.py`` builds its network, its LightningModule and its DataModule, and
calls ``fit_and_save``; its export is ``export`` with its network class. What differs between
tasks (data, heads, metrics, decoding) stays in the task.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Sequence, Type

from tao_launcher.errors import DataError, UsageError

if TYPE_CHECKING:  # the heavy modules are imported inside the functions that use them (see fit_and_save)
    from tao_launcher.core.module import BucketedDataModule
    from tao_launcher.nlp.model import EncoderNet

ARCHIVE_NAME = "trained-model.tao"
log = logging.getLogger("tao.nlp")


def fit_and_save(task: str, module, datamodule: BucketedDataModule, tokenizer, spec, run,
                 main_metric: str, main_metric_mode: str = "max") -> Dict:
    """The one training path of train and finetune: Lightning fit (resumable), then the final archive.

    ``module.net`` is the ``EncoderNet`` that goes into ``checkpoints/trained-model.tao``: the weights of
    the best validation by ``trainer.monitor`` (default ``main_metric``, better when higher for
    ``main_metric_mode="max"``), or of the last step with ``trainer.save_best_model=false``.
    """
    # imported here, not at the top: every task's subtasks module imports this one, and its
    # dataset_convert, evaluate, infer and export must not pay for Lightning (tests/test_import_cost.py)
    from tao_launcher.core import trainer as core_trainer
    from tao_launcher.core.model import write_model_archive
    from tao_launcher.core.results import is_worker_process
    from tao_launcher.nlp.model import write_payload

    trainer = core_trainer.build_trainer(spec.trainer, run.results, run.gpus,
                                         main_metric=(main_metric, main_metric_mode), key=run.key)
    core_trainer.fit(trainer, module, datamodule, run.results)
    if trainer.interrupted:
        raise KeyboardInterrupt
    metrics = core_trainer.kept_metrics(trainer)
    if trainer.global_rank == 0 and not is_worker_process():
        archive = run.results.checkpoints / ARCHIVE_NAME
        write_model_archive(archive, run.key, kind="tao", task=task, metrics=metrics,
                            write_payload=lambda folder: write_payload(folder, module.net, tokenizer))
        run.results.record(metrics, model=archive)
        core_trainer.discard_resume_checkpoint(run.results)
        core_trainer.report(trainer, run.results, archive)
    return metrics


def export(spec, run, task: str, net_cls: Type[EncoderNet]) -> Dict:
    """One export of the ``-m`` model, by ``export_format`` and ``encrypt``:

    - RIVA: ``exported-model.riva``, encrypted, for Riva ServiceMaker (model.onnx, riva_config.yaml, ...);
    - ONNX: ``exported-model.eonnx``, encrypted, what infer_onnx reads (model.onnx, tokenizer, labels);
    - ONNX encrypt=false: ``exported-model-onnx/``, the same files as a plain folder (onnxruntime opens
      its model.onnx; ``infer_onnx -m .../model.onnx`` reads it);
    - HF: ``exported-model-hf/``, a Hugging Face folder (nlp/hf_export.py).
    """
    from tao_launcher.core.model import write_model_archive, write_model_folder
    from tao_launcher.core.onnx_export import export_onnx, riva_config
    from tao_launcher.nlp.model import EncoderNet, load_model, write_payload

    fmt = spec.export_format
    if fmt == "RIVA" and not spec.encrypt:
        raise UsageError("export_format=RIVA is always encrypted (riva-build reads .riva archives): "
                         "for a plain model use export_format=ONNX encrypt=false, or export_format=HF")
    plain = fmt == "HF" or not spec.encrypt
    kind = {"RIVA": "riva", "HF": "hf"}.get(fmt, "onnx" if plain else "eonnx")
    name = spec.export_to or {"riva": "exported-model.riva", "eonnx": "exported-model.eonnx",
                              "onnx": "exported-model-onnx", "hf": "exported-model-hf"}[kind]
    if "/" in name or name in ("", ".", ".."):
        raise UsageError(f"export_to is a name inside the results folder, got {name!r}")
    if kind == "hf" and net_cls.heads is EncoderNet.heads:
        raise UsageError(f"export_format=HF is not available for {task} yet: use export_format=ONNX encrypt=false "
                         f"for a plain model")
    dest = run.results.path / name
    net, tokenizer, _ = load_model(run.model, run.key, task, net_cls)

    def payload(out: Path) -> None:
        if kind == "hf":
            from tao_launcher.nlp.hf_export import write_hf_folder

            write_hf_folder(out, net, tokenizer, task)
            return
        export_onnx(net, out / "model.onnx", opset=spec.onnx_opset)
        write_payload(out, net, tokenizer, weights=False)
        if kind == "riva":
            (out / "riva_config.yaml").write_text(riva_config(task, net))

    if plain:
        write_model_folder(dest, kind=kind, task=task, write_payload=payload)
    else:
        write_model_archive(dest, run.key, kind=kind, task=task, metrics=None, write_payload=payload)
    run.results.record(model=dest / "model.onnx" if kind == "onnx" else dest)
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
