"""The model archive round trip that every task shares (its Lightning base is core/module.py).

A model archive's payload (see docs/archive_format.md for the encryption)::

    manifest.json        format, task, kind, tao/torch (and transformers) versions, created, metrics
    model_config.json    the task's model settings (labels, head, max_seq_length, ...)
    model.safetensors    all weights (never pickle)
    encoder/             the encoder's Hugging Face config.json
    tokenizer/           tokenizer and vocabulary files
    labels.txt           class names, line N is label id N (tasks with labels)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Protocol, Tuple

from tao_launcher import __version__
from tao_launcher.core.archive import WrongKeyOrCorrupted, open_archive, read_archive_kind, save_archive
from tao_launcher.errors import ArchiveError, UsageError

MANIFEST = "manifest.json"
ARCHIVE_FORMAT = "tao-model/1"


def write_model_archive(dest: Path, key: str, *, kind: str, task: str, metrics: Optional[Dict[str, Any]],
                        write_payload: Callable[[Path], None]) -> None:
    """Stage the payload in a private temp folder, add the manifest, encrypt atomically to ``dest``."""
    with tempfile.TemporaryDirectory(prefix="tao-pack-") as folder:
        payload = Path(folder)
        write_payload(payload)
        write_manifest(payload, kind=kind, task=task, metrics=metrics)
        save_archive(payload, dest, key, kind)


def write_model_folder(dest: Path, *, kind: str, task: str, write_payload: Callable[[Path], None]) -> None:
    """The same payload and manifest as an archive, unencrypted (plain exports): written in a hidden
    folder beside ``dest`` and renamed into place, so ``dest`` is whole or absent."""
    import shutil

    staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        write_payload(staging)
        write_manifest(staging, kind=kind, task=task, metrics=None)
        if dest.is_dir():  # --overwrite of an earlier export
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_manifest(payload: Path, *, kind: str, task: str, metrics: Optional[Dict[str, Any]]) -> None:
    """``manifest.json``: what the payload is (task, kind), what made it, and its files."""
    import sys

    import torch

    transformers = sys.modules.get("transformers")  # only the tasks that use it have imported it
    manifest = {
        "format": ARCHIVE_FORMAT, "task": task, "kind": kind, "tao_version": __version__,
        "torch_version": torch.__version__,
        **({"transformers_version": transformers.__version__} if transformers else {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics or {}, "files": sorted(str(p.relative_to(payload)) for p in payload.rglob("*")
                                                  if p.is_file()),
    }
    (payload / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))


@contextlib.contextmanager
def opened_model_archive(path: Path, key: str, task: str, kinds=("tao",)) -> Iterator[Path]:
    """Decrypt an archive made for ``task`` into a temp folder; refuse one of another task or kind."""
    with contextlib.ExitStack() as opened:
        try:
            kind = read_archive_kind(path)
            if kind not in kinds:
                wanted = " or ".join("." + k for k in kinds)
                raise UsageError(f"{path} is a .{kind} archive, but this subtask needs a {wanted} model: "
                                 f"pass the right file to -m")
            folder = opened.enter_context(open_archive(path, key))
        except WrongKeyOrCorrupted as err:
            raise ArchiveError(f"{err}; check the key (-k or TAO_KEY must be the one the model was written with), "
                               f"or copy the archive again if it may be damaged") from None
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("task") != task:
            raise UsageError(f"{path} holds a {manifest.get('task')} model, not {task}: pass a {task} archive to -m")
        yield folder


def plain_model_folder(model_file: Path, task: str) -> Path:
    """The folder of a plain export (``write_model_folder``) that holds ``model_file``; refuse a file
    that no tao export wrote, or one of another task."""
    folder = model_file.parent
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        raise UsageError(f"{model_file} has no tao manifest.json beside it: pass the model.onnx of a folder "
                         f"that 'export export_format=ONNX encrypt=false' wrote, or an .eonnx/.riva archive") from None
    if manifest.get("task") != task:
        raise UsageError(f"{model_file} holds a {manifest.get('task')} model, not {task}: pass a {task} export to -m")
    return folder



class ModelFamily(Protocol):
    """How one family of networks (NLP encoders with heads, speech CTC models) lays out its archive payload.

    ``processor`` is what turns raw input into model feeds and back: the tokenizer or the vocabulary.
    The modules nlp/model.py and tasks/speech_to_text/model.py are the two families (module-level
    functions); the loading below, core/export.py and core/predict.py use nothing else of them."""

    def write_payload(self, folder: Path, net, processor, *, weights: bool = True) -> None:
        """The model's files; ``weights=False`` for exports, which carry model.onnx instead."""

    def read_model(self, folder: Path, net_cls, *, inference: bool = False) -> Tuple[Any, Any, Dict]:
        """(network in eval mode, processor, model config) of an opened archive."""

    def read_processor(self, folder: Path, config: Dict) -> Any:
        """The processor of an opened export (which has no weights), read into memory."""


#: subtasks that only run the model forward, so may load it without transformers (nlp/model.py ``read_model``);
#: finetune trains transformers' classes and export saves and traces them
INFERENCE_SUBTASKS = ("evaluate", "infer")


def load_model(path: Path, key: str, task: str, family: ModelFamily, net_cls, *, inference: bool = False
               ) -> Tuple[Any, Any, Dict]:
    """Network, processor and config of a ``.tao`` archive of ``task``; nothing decrypted stays on disk."""
    with opened_model_archive(path, key, task) as folder:
        return family.read_model(folder, net_cls, inference=inference)


def load_run_model(run, task: str, family: ModelFamily, net_cls) -> Tuple[Any, Any, Dict]:
    """Network, processor and config of the run's ``-m`` archive, as the run's subtask needs them."""
    return load_model(run.model, run.key, task, family, net_cls, inference=run.subtask in INFERENCE_SUBTASKS)


def load_export(path: Path, key: str, task: str, family: ModelFamily) -> Tuple[bytes, Any, Dict]:
    """model.onnx bytes, processor and config of an export of ``task``: an encrypted ``.eonnx``/``.riva``
    archive, or the ``model.onnx`` of a plain export folder (export_format=ONNX encrypt=false)."""
    def read(folder: Path, model_file: Path) -> Tuple[bytes, Any, Dict]:
        config = json.loads((folder / "model_config.json").read_text())
        return model_file.read_bytes(), family.read_processor(folder, config), config

    if path.suffix == ".onnx":
        return read(plain_model_folder(path, task), path)
    with opened_model_archive(path, key, task, kinds=("eonnx", "riva")) as folder:
        return read(folder, folder / "model.onnx")
