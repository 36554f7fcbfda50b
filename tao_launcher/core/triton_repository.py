"""A Triton model repository from an export (``export_format=TRITON``), and reading one back for ``tao serve``.

Layout of ``exported-model-triton/`` (one model; ``tao serve -m`` takes several repositories)::

    <name>/config.pbtxt       Triton's model configuration: python backend, dynamic batching, CPU instances
    <name>/tao_model.json     what tao and a client need to know: task, inputs, outputs (``MODEL_INFO`` below)
    <name>/1/model.py         two lines: the model is tao_launcher.serving.triton_model.TritonPythonModel
    <name>/1/model.eonnx      the export, encrypted as infer_onnx reads it (decrypted in memory at load), or
    <name>/1/model/           with encrypt=false, the plain export folder (model.onnx, tokenizer, labels)

``<name>`` is ``triton.model_name`` (default: the task). Every input is a batch of strings, shape ``[-1, 1]``
(``TYPE_STRING``: UTF-8 text, or for ``AUDIO`` a whole WAV/FLAC file's bytes); the one output ``ANSWER`` holds,
per input, the JSON object that ``infer_onnx`` writes into infer_results.json for it. So the served answers are
infer_onnx's answers, by construction: the same PredictStep runs inside Triton (core/predict.py).

``config.pbtxt`` is checked against Triton's own schema (``tritonclient.grpc.model_config_pb2``) when written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from tao_launcher.errors import UsageError

MODEL_INFO = "tao_model.json"
INFO_FORMAT = "tao-triton/1"
VERSION = "1"
ANSWER = "ANSWER"
ENCRYPTED_MODEL = "model.eonnx"
PLAIN_MODEL = "model"
MODEL_PY = ('"""Written by tao export (export_format=TRITON): the model is tao\'s own (serving/triton_model.py)."""\n'
            "from tao_launcher.serving.triton_model import TritonPythonModel  # noqa: F401\n")
NAME = re.compile(r"[A-Za-z0-9_.-]+")


def model_name(triton, task: str) -> str:
    """``triton.model_name`` or the task; a name Triton and a URL path take as it is."""
    name = triton.model_name or task
    if not NAME.fullmatch(name) or name.startswith("."):
        raise UsageError(f"triton.model_name {name!r} is not a model name: use letters, digits, '_', '-' and '.'")
    return name


def config_pbtxt(name: str, inputs: Sequence[str], triton) -> str:
    """Triton's configuration of a python-backend model of string inputs and one JSON answer."""
    tensors = lambda names: ", ".join(  # noqa: E731
        f'{{ name: "{n}" data_type: TYPE_STRING dims: [ 1 ] }}' for n in names)
    return "\n".join([
        f'name: "{name}"',
        'backend: "python"',
        f"max_batch_size: {triton.max_batch_size}",
        f"input [ {tensors(inputs)} ]",
        f"output [ {tensors([ANSWER])} ]",
        f"dynamic_batching {{ max_queue_delay_microseconds: {triton.max_queue_delay_us} }}",
        f"instance_group [ {{ kind: KIND_CPU count: {triton.instances} }} ]",
    ]) + "\n"


def check_config(text: str, where: str) -> None:
    """Parse ``text`` with Triton's own ModelConfig schema: a field it does not know is a bug here, said now."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as err:
        raise RuntimeError(f"{where} does not follow Triton's model configuration schema: {err}") from None


def write_repository(dest: Path, *, task: str, predict_ref: str, spec_ref: str, inputs: Sequence[str], triton,
                     encrypted: bool, write_model: Callable[[Path], None]) -> None:
    """Write the repository ``dest`` (staged beside it, renamed into place: whole or absent).
    ``write_model(path)`` writes the export at ``path`` (an archive file, or a folder when not encrypted)."""
    name = model_name(triton, task)
    staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        version = staging / name / VERSION
        version.mkdir(parents=True)
        write_model(version / (ENCRYPTED_MODEL if encrypted else PLAIN_MODEL))
        (version / "model.py").write_text(MODEL_PY)
        config = config_pbtxt(name, inputs, triton)
        check_config(config, f"{name}/config.pbtxt")
        (staging / name / "config.pbtxt").write_text(config)
        info = {"format": INFO_FORMAT, "task": task, "model_name": name, "predict": predict_ref, "spec": spec_ref,
                "inputs": list(inputs), "outputs": [ANSWER], "encrypted": encrypted,
                "answer": "per input, the JSON object infer_onnx writes into infer_results.json"}
        (staging / name / MODEL_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if dest.is_dir():  # --overwrite of an earlier export
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def served_models(repository: Path) -> List[Dict]:
    """The tao models of a repository folder (their ``tao_model.json``, with ``folder`` added); a folder that
    holds none is a UsageError saying what to pass."""
    if not repository.is_dir():
        what = "does not exist" if not repository.exists() else "is not a folder"
        raise UsageError(f"-m {repository} {what}: pass the exported-model-triton/ folder that "
                         f"'export export_format=TRITON' wrote")
    models = []
    for info_file in sorted(repository.glob(f"*/{MODEL_INFO}")):
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UsageError(f"{info_file} cannot be read ({err}): export the model again") from None
        if info.get("format") != INFO_FORMAT:
            raise UsageError(f"{info_file} is not a tao model description ({INFO_FORMAT}): export the model again")
        models.append({**info, "folder": str(info_file.parent)})
    if not models:
        raise UsageError(f"-m {repository} holds no tao model (no */{MODEL_INFO}): pass the exported-model-triton/ "
                         f"folder that 'export export_format=TRITON' wrote")
    return models
