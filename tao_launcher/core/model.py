"""What every task's model shares: optimizer setup and the model archive round trip.

A model archive's payload (see docs/archive_format.md for the encryption)::

    manifest.json        format, task, kind, tao/torch/transformers versions, created, metrics
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
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import pytorch_lightning as pl

from tao_launcher import __version__
from tao_launcher.core.archive import open_archive, read_archive_kind, save_archive
from tao_launcher.core.optim import build_optimizer, build_scheduler
from tao_launcher.errors import UsageError

MANIFEST = "manifest.json"
ARCHIVE_FORMAT = "tao-model/1"


class TaoModule(pl.LightningModule):
    """LightningModule base: optimizer and per-step schedule from the spec's ``optim`` section."""

    def __init__(self, optim_spec=None):
        super().__init__()
        self.optim_spec = optim_spec

    def configure_optimizers(self):
        optimizer = build_optimizer(self.named_parameters(), self.optim_spec)
        scheduler = build_scheduler(optimizer, self.optim_spec.sched, int(self.trainer.estimated_stepping_batches))
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def log_training(self, loss, batch) -> None:
        """train_loss on the progress bar and the learning rate, for every task the same way."""
        from tao_launcher.core.trainer import batch_size_of

        rows = batch_size_of(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=rows)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=rows)


def write_model_archive(dest: Path, key: str, *, kind: str, task: str, metrics: Optional[Dict[str, Any]],
                        write_payload: Callable[[Path], None]) -> None:
    """Stage the payload in a private temp folder, add the manifest, encrypt atomically to ``dest``."""
    import torch
    import transformers

    with tempfile.TemporaryDirectory(prefix="tao-pack-") as folder:
        payload = Path(folder)
        write_payload(payload)
        manifest = {
            "format": ARCHIVE_FORMAT, "task": task, "kind": kind, "tao_version": __version__,
            "torch_version": torch.__version__, "transformers_version": transformers.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "metrics": metrics or {}, "files": sorted(str(p.relative_to(payload)) for p in payload.rglob("*")
                                                      if p.is_file()),
        }
        (payload / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        save_archive(payload, dest, key, kind)


@contextlib.contextmanager
def opened_model_archive(path: Path, key: str, task: str, kinds=("tao",)) -> Iterator[Path]:
    """Decrypt an archive made for ``task`` into a temp folder; refuse one of another task or kind."""
    kind = read_archive_kind(path)
    if kind not in kinds:
        wanted = " or ".join("." + k for k in kinds)
        raise UsageError(f"{path} is a .{kind} archive, but this subtask needs a {wanted} model: "
                         f"pass the right file to -m")
    with open_archive(path, key) as folder:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("task") != task:
            raise UsageError(f"{path} holds a {manifest.get('task')} model, not {task}: pass a {task} archive to -m")
        yield folder
