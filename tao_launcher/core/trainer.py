"""A PyTorch Lightning trainer built from ``TrainerSpec``, with crash-safe resume.

- ``checkpoints/last.ckpt`` is written every ``checkpoint_every_n_steps`` steps and at each
  epoch end, atomically (temp file + rename): ``kill -9`` at any moment leaves the previous
  checkpoint intact.
- Running train again into the same results folder resumes from it; the training data
  loader is resumable, so a run stopped mid-epoch continues with the batches it had not seen.
- ``-g N`` asks for N devices: GPUs where there are any, else N CPU processes (DDP, gloo).
"""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from tao_launcher.errors import UsageError
from tao_launcher.core.results import ResultsFolder, is_worker_process

log = logging.getLogger("tao.trainer")
LAST_CHECKPOINT = "last.ckpt"
METRICS_FILE = "metrics.csv"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temp file and rename, so a killed run never leaves half a checkpoint.

    Resume reads them with ``weights_only=True``: tensors and plain containers only, no pickled
    code, so a planted ``last.ckpt`` cannot run anything.
    """

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> Dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


class ResumableDataLoader(torch.utils.data.DataLoader):
    """A DataLoader whose position inside the epoch goes into checkpoints (Lightning's _Stateful protocol)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches_done = 0

    def __iter__(self):
        self.batches_done = getattr(self.batch_sampler, "skip_batches", 0)
        for batch in super().__iter__():
            self.batches_done += 1
            yield batch

    def state_dict(self) -> Dict[str, int]:
        return {"batches_done": self.batches_done}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.batch_sampler.skip_batches = int(state.get("batches_done", 0))


class ResumableCheckpoint(pl.Callback):
    """Save checkpoints/last.ckpt every N steps and at the end of each epoch."""

    def __init__(self, folder: Path, every_n_steps: int):
        self.path = folder / LAST_CHECKPOINT
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.every_n_steps and step and step % self.every_n_steps == 0 and \
                getattr(self, "_last_saved", None) != step:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self._save(trainer)

    def _save(self, trainer):
        self._last_saved = trainer.global_step
        trainer.save_checkpoint(self.path)


class MetricsLog(pl.Callback):
    """metrics.csv (one row per validation) and the latest metrics in status.json.

    ``train_samples_per_sec`` is training samples (the rows of a batch: sentences, windows,
    utterances) over the wall time of the training loop (data loading included, validation excluded).
    """

    def __init__(self, results: ResultsFolder):
        self.results = results
        self.samples = 0
        self.seconds = 0.0
        self._t0 = None
        self.validated_step = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.samples += batch_size_of(batch) * trainer.world_size

    def on_validation_start(self, trainer, pl_module):
        if self._t0 is not None:
            self.seconds += time.perf_counter() - self._t0
            self._t0 = None

    def on_validation_end(self, trainer, pl_module):
        self.validated_step = trainer.global_step
        if trainer.sanity_checking or is_worker_process():
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row.update({k: round(float(v), 6) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
        if self.seconds:
            row["train_samples_per_sec"] = round(self.samples / self.seconds, 2)
        path = self.results.path / METRICS_FILE
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.results.record({k: v for k, v in row.items()})
        log.info("epoch %d step %d: %s", row["epoch"], row["step"],
                 ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("epoch", "step")))


def batch_size_of(batch) -> int:
    """Rows of a batch, whatever the task: the first dimension of its first tensor."""
    first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return int(first.shape[0]) if hasattr(first, "shape") else len(first)


def devices_for(gpus: int) -> Dict[str, Any]:
    """Lightning accelerator/devices/strategy for ``-g``; a CPU stands in where there is no GPU."""
    count = max(1, gpus)
    if torch.cuda.is_available():
        if count > torch.cuda.device_count():
            raise UsageError(f"-g {gpus} asks for more GPUs than the {torch.cuda.device_count()} visible here")
        accelerator = "gpu"
    else:
        accelerator = "cpu"
        if gpus >= 1 and not is_worker_process():
            log.info("no GPU found: running on the CPU with %d process%s", count, "es" if count > 1 else "")
    strategy = "ddp" if count > 1 else "auto"
    return {"accelerator": accelerator, "devices": count, "strategy": strategy}


def seed_everything(seed: int) -> None:
    """Python, numpy and torch seeds. Called once, by the entrypoint, before the subtask draws any weights."""
    pl.seed_everything(seed, workers=True, verbose=False)


def discard_resume_checkpoint(results: ResultsFolder) -> None:
    """A finished run's archive is final: drop last.ckpt (weights and optimizer state, ~3x the model)."""
    (results.checkpoints / LAST_CHECKPOINT).unlink(missing_ok=True)


def build_trainer(spec, results: ResultsFolder, gpus: int, callbacks: Optional[List[pl.Callback]] = None) -> pl.Trainer:
    """``spec`` is a ``TrainerSpec``."""
    placement = devices_for(gpus)
    if spec.precision == "16-mixed" and placement["accelerator"] == "cpu":
        raise UsageError("trainer.precision=16-mixed needs a GPU; on the CPU use 32 or bf16-mixed")
    return pl.Trainer(
        **placement,
        max_epochs=spec.max_epochs,
        max_steps=spec.max_steps,
        precision=spec.precision,
        gradient_clip_val=spec.gradient_clip_val or None,
        accumulate_grad_batches=spec.accumulate_grad_batches,
        val_check_interval=spec.val_check_interval,
        log_every_n_steps=spec.log_every_n_steps,
        enable_progress_bar=spec.enable_progress_bar,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        default_root_dir=str(results.path),
        plugins=[AtomicCheckpointIO()],
        callbacks=[ResumableCheckpoint(results.checkpoints, spec.checkpoint_every_n_steps),
                   MetricsLog(results)] + list(callbacks or []),
    )


def fit(trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule,
        results: ResultsFolder) -> None:
    """Train, resuming from checkpoints/last.ckpt when the results folder holds an unfinished run."""
    ckpt = results.checkpoints / LAST_CHECKPOINT
    resume = ckpt if (results.resuming or (is_worker_process() and ckpt.exists())) else None
    if resume and not is_worker_process():
        state = torch.load(resume, map_location="cpu", weights_only=True)
        log.info("resuming from %s (epoch %d, step %d)", resume, state.get("epoch", 0), state.get("global_step", 0))
        results.record(resumed_from=str(resume))
        del state
    module.train()  # pretrained weights load in eval mode; dropout must be on for training
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    metrics_log = next(c for c in trainer.callbacks if isinstance(c, MetricsLog))
    if not trainer.interrupted and metrics_log.validated_step != trainer.global_step:
        # max_steps can end training mid-epoch, before its validation: the final model is always validated
        trainer.validate(module, datamodule=datamodule, verbose=False)
