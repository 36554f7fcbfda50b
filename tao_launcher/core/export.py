"""Where an export goes and how it is written, for every task (the task writes the files themselves).

By ``export_format`` and ``encrypt``:

- RIVA: ``exported-model.riva``, encrypted, for Riva ServiceMaker (model.onnx, riva_config.yaml, ...);
- ONNX: ``exported-model.eonnx``, encrypted, what infer_onnx reads (model.onnx and what decoding needs);
- ONNX encrypt=false: ``exported-model-onnx/``, the same files as a plain folder (onnxruntime opens its
  model.onnx; ``infer_onnx -m .../model.onnx`` reads it);
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
                 "hf": "exported-model-hf"}
log = logging.getLogger("tao.export")


@dataclass(frozen=True)
class ExportTarget:
    kind: str     # riva, eonnx, onnx (plain folder) or hf
    dest: Path
    plain: bool   # a folder, not an encrypted archive


def export_target(spec, run) -> ExportTarget:
    """The kind and destination of the export the spec asks for; refuses a combination that cannot be written."""
    fmt = spec.export_format
    if fmt == "RIVA" and not spec.encrypt:
        raise UsageError("export_format=RIVA is always encrypted (riva-build reads .riva archives): "
                         "for a plain model use export_format=ONNX encrypt=false")
    plain = fmt == "HF" or not spec.encrypt
    kind = {"RIVA": "riva", "HF": "hf"}.get(fmt, "onnx" if plain else "eonnx")
    name = spec.export_to or DEFAULT_NAMES[kind]
    if "/" in name or name in ("", ".", ".."):
        raise UsageError(f"export_to is a name inside the results folder, got {name!r}")
    return ExportTarget(kind, run.results.path / name, plain)


def write_export(target: ExportTarget, run, task: str, write_files: Callable[[Path], None]) -> None:
    """Write the export: ``write_files(folder)`` puts the model's files into the staging folder."""
    from tao_launcher.core.model import write_model_archive, write_model_folder

    if target.plain:
        write_model_folder(target.dest, kind=target.kind, task=task, write_payload=write_files)
    else:
        write_model_archive(target.dest, run.key, kind=target.kind, task=task, metrics=None, write_payload=write_files)
    run.results.record(model=target.dest / "model.onnx" if target.kind == "onnx" else target.dest)
    log.info("exported %s", target.dest)
