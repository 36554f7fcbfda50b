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

log = logging.getLogger("tao.nlp")


def fit_and_save(task: str, module, datamodule: BucketedDataModule, tokenizer, spec, run,
                 main_metric: str, main_metric_mode: str = "max") -> Dict:
    """``core.trainer.fit_and_save`` with the NLP payload: ``module.net`` (an ``EncoderNet``) and its tokenizer."""
    # imported here, not at the top: every task's subtasks module imports this one, and its
    # dataset_convert, evaluate, infer and export must not pay for Lightning (tests/test_import_cost.py)
    from tao_launcher.core.trainer import fit_and_save as fit_and_save_core
    from tao_launcher.nlp.model import write_payload

    return fit_and_save_core(task, module, datamodule, spec, run, main_metric=main_metric,
                             main_metric_mode=main_metric_mode,
                             write_payload=lambda folder: write_payload(folder, module.net, tokenizer))


def export(spec, run, task: str, net_cls: Type[EncoderNet]) -> Dict:
    """One export of the ``-m`` model, by ``export_format`` and ``encrypt`` (core/export.py): model.onnx with the
    tokenizer and labels (and riva_config.yaml for RIVA), or a Hugging Face folder for HF (nlp/hf_export.py)."""
    from tao_launcher.core.export import export_target, write_export
    from tao_launcher.core.onnx_export import export_onnx, riva_config
    from tao_launcher.nlp.model import EncoderNet, load_model, write_payload

    target = export_target(spec, run)
    if target.kind == "hf" and net_cls.heads is EncoderNet.heads:
        raise UsageError(f"export_format=HF is not available for {task} yet: use export_format=ONNX encrypt=false "
                         f"for a plain model")
    net, tokenizer, _ = load_model(run.model, run.key, task, net_cls)

    def files(out: Path) -> None:
        if target.kind == "hf":
            from tao_launcher.nlp.hf_export import write_hf_folder

            write_hf_folder(out, net, tokenizer, task)
            return
        export_onnx(net, out / "model.onnx", opset=spec.onnx_opset)
        write_payload(out, net, tokenizer, weights=False)
        if target.kind == "riva":
            (out / "riva_config.yaml").write_text(riva_config(task, net))

    write_export(target, run, task, files)
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
