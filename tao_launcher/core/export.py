"""Where an export goes and how it is written, for every task (the task writes the files themselves).

By ``export_format`` and ``encrypt``:

- RIVA: ``exported-model.riva``, encrypted, for Riva ServiceMaker (model.onnx, riva_config.yaml, ...);
- ONNX: ``exported-model.eonnx``, encrypted, what infer_onnx reads (model.onnx and what decoding needs);
- ONNX encrypt=false: ``exported-model-onnx/``, the same files as a plain folder (onnxruntime opens its
  model.onnx; ``infer_onnx -m .../model.onnx`` reads it);
- TRITON: ``exported-model-triton/``, a Triton model repository that ``tao serve`` serves: the ONNX export
  (encrypted, or plain with encrypt=false) under a python-backend model running the task's predict step
  (core/triton_repository.py);
- HF (NLP tasks): ``exported-model-hf/``, a Hugging Face folder (nlp/hf_export.py).

``export_to`` renames it inside the results folder. Archives are written atomically, folders staged and
renamed (core/model.py): an export is whole or absent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tao_launcher.errors import UsageError

DEFAULT_NAMES = {"riva": "exported-model.riva", "eonnx": "exported-model.eonnx", "onnx": "exported-model-onnx",
                 "triton": "exported-model-triton", "hf": "exported-model-hf"}
log = logging.getLogger("tao.export")


@dataclass(frozen=True)
class ExportTarget:
    kind: str     # riva, eonnx, onnx (plain folder), triton (a repository holding eonnx or onnx) or hf
    dest: Path
    plain: bool   # plain files, not an encrypted archive


def export_target(spec, run) -> ExportTarget:
    """The kind and destination of the export the spec asks for; refuses a combination that cannot be written."""
    fmt = spec.export_format
    if fmt == "RIVA" and not spec.encrypt:
        raise UsageError("export_format=RIVA is always encrypted (riva-build reads .riva archives): "
                         "for a plain model use export_format=ONNX encrypt=false")
    plain = fmt == "HF" or not spec.encrypt
    kind = {"RIVA": "riva", "HF": "hf", "TRITON": "triton"}.get(fmt, "onnx" if plain else "eonnx")
    name = spec.export_to or DEFAULT_NAMES[kind]
    if "/" in name or name in ("", ".", ".."):
        raise UsageError(f"export_to is a name inside the results folder, got {name!r}")
    return ExportTarget(kind, run.results.path / name, plain)


def write_export(target: ExportTarget, run, task: str, write_files: Callable[[Path], None], spec=None) -> None:
    """Write the export: ``write_files(folder)`` puts the model's files into the staging folder."""
    from tao_launcher.core.model import write_model_archive, write_model_folder

    def write(dest: Path, kind: str) -> None:
        if target.plain:
            write_model_folder(dest, kind=kind, task=task, write_payload=write_files)
        else:
            write_model_archive(dest, run.key, kind=kind, task=task, metrics=None, write_payload=write_files)

    if target.kind == "triton":
        from tao_launcher.registry import TASKS, resolve
        from tao_launcher.core.triton_repository import write_repository

        entry = TASKS[task]
        predict_ref = f"{entry.package}.subtasks:PREDICT"
        write_repository(target.dest, task=task, predict_ref=predict_ref,
                         spec_ref=entry.subtasks["infer_onnx"].schema_ref, inputs=resolve(predict_ref).served_inputs,
                         triton=spec.triton, encrypted=not target.plain,
                         write_model=lambda dest: write(dest, "onnx" if target.plain else "eonnx"))
    else:
        write(target.dest, target.kind)
    run.results.record(model=target.dest / "model.onnx" if target.kind == "onnx" else target.dest)
    log.info("exported %s", target.dest)


def export_model(spec, run, task: str, family, net_cls) -> None:
    """One export of the ``-m`` model, by ``export_format`` and ``encrypt``: model.onnx with what decoding needs
    (the family's payload without weights, and riva_config.yaml for RIVA), or a Hugging Face folder for HF
    (a family that names its ``HF_EXPORT`` writer and a network whose ``exports_hf()`` says yes: nlp/hf_export.py)."""
    from tao_launcher.core.model import load_model
    from tao_launcher.core.onnx_export import export_onnx, riva_config

    target = export_target(spec, run)
    hf_export = getattr(family, "HF_EXPORT", None)
    if target.kind == "hf" and not (hf_export and getattr(net_cls, "exports_hf", bool)()):
        raise UsageError(f"export_format=HF is not available for {task} yet: use export_format=ONNX encrypt=false "
                         f"for a plain model")
    net, processor, _ = load_model(run.model, run.key, task, family, net_cls)

    def files(out: Path) -> None:
        if target.kind == "hf":
            from tao_launcher.registry import resolve

            resolve(hf_export)(out, net, processor, task)
            return
        export_onnx(net, out / "model.onnx", opset=spec.onnx_opset)
        family.write_payload(out, net, processor, weights=False)
        if target.kind == "riva":
            (out / "riva_config.yaml").write_text(riva_config(task, net))

    write_export(target, run, task, files, spec)
