"""A PyTorch Lightning trainer built from ``TrainerSpec``, with crash-safe resume.

- ``checkpoints/last.ckpt`` is written every ``checkpoint_every_n_steps`` steps and at each
  epoch end, atomically (temp file + rename): ``kill -9`` at any moment leaves the previous
  checkpoint intact. It is encrypted with the run's key (mode 0600) and deleted once the archive
  is written: a user who passes ``-k`` finds no readable model on disk.
- Running train again into the same results folder resumes from it; the training data
  loader is resumable, so a run stopped mid-epoch continues with the batches it had not seen.
- ``-g N`` asks for N devices: GPUs where there are any, else N CPU processes (DDP, gloo).
- The archive holds the best validation's weights by ``trainer.monitor`` (``BestModel``, as NeMo's
  save_best_model); what the terminal shows, the plots and the TensorBoard event files come from
  ``core/progress.py`` and ``core/plots.py`` (``report``).
- A NaN or infinite loss stops the run with one sentence and no archive (``StopOnNonFinite``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from tao_launcher.errors import ArchiveError, TaoError, UsageError
from tao_launcher.core import faultpoints, progress
from tao_launcher.core.module import BucketedDataModule, batch_size_of
from tao_launcher.core.results import ResultsFolder, partial_path, write_text_atomic

log = logging.getLogger("tao.trainer")
LAST_CHECKPOINT = "last.ckpt"
ARCHIVE_NAME = "trained-model.tao"  # in checkpoints/: what train and finetune leave
CHECKPOINT_KIND = "ckpt"   # the archive header's kind of an encrypted last.ckpt (core/archive.py)
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
PLOTS_DIR = "plots"


class AtomicCheckpointIO(TorchCheckpointIO):
    """last.ckpt, encrypted with the run's key and written whole or not at all.

    Saved through ``archive.encrypt_stream`` (the archives' chunked AES-GCM, kind ``ckpt``) into a
    temp file of its own (mode 0600; removed on any error or signal, and by the next run after a
    kill) that is fsynced and renamed: a killed run never leaves half a checkpoint. Resume decrypts
    it in memory and reads it with ``weights_only=True``: tensors and plain containers only, no
    pickled code; a changed or planted file fails authentication before torch sees a byte.
    """

    def __init__(self, key: Optional[str]):
        super().__init__()
        self.key = key
        self._preloaded: Optional[Tuple[Path, Dict[str, Any]]] = None

    def preload(self, path) -> Dict[str, Any]:
        """Read the checkpoint before fit (to report it, and fail early on a wrong key); fit's own
        load then takes this copy instead of decrypting again."""
        self._preloaded = (Path(path), self._read(Path(path)))
        return self._preloaded[1]

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> Dict[str, Any]:
        if self._preloaded is not None and self._preloaded[0] == Path(path):
            state, self._preloaded = self._preloaded[1], None
            return state
        return self._read(Path(path))

    def _read(self, path: Path) -> Dict[str, Any]:
        from tao_launcher.core.archive import decrypt_file

        try:
            payload = decrypt_file(path, self.key, (CHECKPOINT_KIND,))
        except ArchiveError as err:
            raise ArchiveError(f"{err}; resuming needs the key of the run that wrote it (the same -k), or pass "
                               f"--overwrite to start over") from None
        return torch.load(payload, map_location="cpu", weights_only=True)

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options=None) -> None:
        from tao_launcher.core.archive import encrypt_stream

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_path(path)
        try:
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                with encrypt_stream(f, self.key, CHECKPOINT_KIND) as out:
                    torch.save(checkpoint, out)
                faultpoints.pause_point("checkpoint-write")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            if err.errno is None:
                raise
            raise OSError(err.errno, err.strerror, str(path)) from None  # the error names last.ckpt, not the temp
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        faultpoints.pause_point("checkpoint-saved")


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
    utterances) over the wall time of the training loop (data loading included, validation excluded);
    a batch that carries ``durations`` (seconds of audio per row) also gives ``train_audio_seconds_per_sec``.
    """

    def __init__(self, results: ResultsFolder):
        self.results = results
        self.samples = 0
        self.audio_seconds = 0.0
        self.seconds = 0.0
        self._t0 = None
        self.validated_step = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.samples += batch_size_of(batch) * trainer.world_size
        if isinstance(batch, dict) and "durations" in batch:
            self.audio_seconds += float(batch["durations"].sum()) * trainer.world_size

    def on_validation_start(self, trainer, pl_module):
        if self._t0 is not None:
            self.seconds += time.perf_counter() - self._t0
            self._t0 = None

    def on_validation_end(self, trainer, pl_module):
        self.validated_step = trainer.global_step
        if trainer.sanity_checking or not self.results.placement.is_output_owner:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row.update({k: round(float(v), 6) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
        if self.seconds:
            row["train_samples_per_sec"] = round(self.samples / self.seconds, 2)
            if self.audio_seconds:
                row["train_audio_seconds_per_sec"] = round(self.audio_seconds / self.seconds, 2)
        write_metrics_row(self.results.path / METRICS_FILE, row)
        self.results.record({k: v for k, v in row.items()})
        log.info("epoch %d step %d: %s", row["epoch"], row["step"],  # the terminal has progress's epoch line
                 ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("epoch", "step")), extra=progress.FILE_ONLY)


def write_metrics_row(path: Path, row: Dict[str, Any]) -> None:
    """Add ``row`` to metrics.csv, rewriting the small file atomically so that it is always whole.

    One header for every row: columns in first-seen order, a new metric adds a column (earlier rows
    leave it empty), a metric a row lacks (a validation right after a resume logs no train_loss)
    stays empty. Rows of a killed attempt from ``row``'s step on are dropped: a resumed run redoes
    those steps, so each step appears once.
    """
    header: List[str] = []
    rows: List[Dict[str, Any]] = []
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if None not in r and _step(r) < row["step"]]
    header += [k for k in row if k not in header]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, restval="")
    writer.writeheader()
    writer.writerows(rows + [row])
    write_text_atomic(path, out.getvalue())


def _step(row: Dict[str, Any]) -> float:
    try:
        return int(row.get("step") or 0)
    except ValueError:
        return math.inf   # not a row this code wrote: dropped


class PausePoints(pl.Callback):
    """The trainer's moments of core/faultpoints.py, for the fault tests; added only when one is asked for."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        faultpoints.pause_point("train-step")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        faultpoints.pause_point("validation")


LOWER_IS_BETTER = ("loss", "wer", "cer", "error")  # monitor_mode=auto: a metric named *loss, *wer, ... is minimized


def monitor_of(spec, main_metric: Tuple[str, str]) -> Tuple[str, str]:
    """(metric, max|min) that picks the model to keep: ``trainer.monitor`` or the task's main metric."""
    name, direction = main_metric
    monitor = spec.monitor or name
    mode = spec.monitor_mode
    if mode == "auto":
        mode = direction if monitor == name else ("min" if monitor.endswith(LOWER_IS_BETTER) else "max")
    return monitor, mode


class BestModel(pl.Callback):
    """The best validation by ``monitor`` (NeMo's save_best_model): its epoch, step and metrics, and a CPU copy
    of the module's weights at that moment, put back by ``restore`` before the archive is written.

    The copy lives in memory and travels inside last.ckpt (left out while the best is the current model),
    so a resumed run still knows its best; no other weights file is written. With ``keep_weights=False``
    (``trainer.save_best_model=false``) only the record is kept and the archive holds the last weights.
    A tie on the monitor (a flat WER of 1.0 early in training, the same exact match twice) goes to the lower
    val_loss, then to the later validation, and the ``best:`` line says so (``tie_break``); NaN never counts
    as better.
    """

    def __init__(self, monitor: str, mode: str, keep_weights: bool = True):
        self.monitor, self.mode, self.keep_weights = monitor, mode, keep_weights
        self.best: Optional[Dict[str, Any]] = None  # value, epoch (from 1), step, metrics
        self.weights: Optional[Dict[str, torch.Tensor]] = None
        self._trainer = None
        self._copy_at_start = False

    def setup(self, trainer, pl_module, stage):
        self._trainer = trainer

    def better(self, value: float, val_loss: Optional[float] = None) -> bool:
        """Better than the best so far by the monitor; on a tie, by a lower or equal val_loss (the later wins)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        best = self.best["value"]
        if value != best:
            return value > best if self.mode == "max" else value < best
        kept_loss = self.best.get("val_loss")
        return val_loss is None or kept_loss is None or val_loss <= kept_loss

    def on_train_start(self, trainer, pl_module):
        if self._copy_at_start:  # resumed from a checkpoint taken at the best step: its weights are the best
            self.weights = _cpu_copy(pl_module)
            self._copy_at_start = False

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = progress.scalars(trainer.callback_metrics)
        if self.monitor not in metrics:
            known = ", ".join(sorted(k for k in metrics if k.startswith("val_")))
            raise UsageError(f"trainer.monitor={self.monitor} is not a metric this task logs: set trainer.monitor "
                             f"to one of {known}")
        value, val_loss = metrics[self.monitor], metrics.get("val_loss")
        tied = self.best is not None and value == self.best["value"]
        # the val_loss of every validation tied with the best on the monitor, the best's included
        ties = self.best.get("ties", [self.best.get("val_loss")]) + [val_loss] if tied else [val_loss]
        if self.better(value, val_loss):
            self.best = {"value": value, "epoch": progress.validated_epoch(trainer), "step": trainer.global_step,
                         "row_epoch": trainer.current_epoch, "metrics": metrics, "val_loss": val_loss, "ties": ties}
            if self.keep_weights:
                self.weights = _cpu_copy(pl_module)
        elif tied:
            self.best["ties"] = ties

    def tie_break(self) -> Optional[str]:
        """How the best validation won a tie on the monitor, for the ``best:`` line; None when it had no tie."""
        ties = self.best.get("ties", []) if self.best is not None else []
        if len(ties) < 2:
            return None
        others = len(ties) - 1
        kept_loss = self.best.get("val_loss")
        if kept_loss is None or ties.count(kept_loss) == len(ties):
            how = "the latest"
        elif ties.count(kept_loss) == 1:
            how = "the lowest val_loss"
        else:
            how = "the latest with the lowest val_loss"
        return f"{self.monitor} tied with {others} other validation{'s' if others > 1 else ''}: kept {how}"

    def is_best_step(self, step: int) -> bool:
        return self.best is not None and self.best["step"] == step

    def restore(self, pl_module, step: int) -> None:
        """Put the best weights back into ``pl_module`` (now at ``step``), unless they are its weights already."""
        if self.keep_weights and self.weights is not None and not self.is_best_step(step):
            pl_module.load_state_dict(self.weights)

    def state_dict(self) -> Dict[str, Any]:
        current = self._trainer is not None and self.is_best_step(self._trainer.global_step)
        return {"best": self.best, "weights": None if current else self.weights, "weights_are_the_model": current}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.weights = state.get("best"), state.get("weights")
        self._copy_at_start = bool(state.get("weights_are_the_model")) and self.keep_weights


class StopOnNonFinite(pl.Callback):
    """A NaN or infinite loss stops the run (exit 1, ``failed`` in status.json, no archive) with one sentence
    saying where and what to try, instead of training on and archiving a broken model: each training loss
    before its backward pass, and val_loss and the monitored metric after each validation. All processes
    decide together (DDP), so none waits for one that stopped."""

    def __init__(self, monitor: str):
        self.monitor = monitor

    def on_before_backward(self, trainer, pl_module, loss):
        value = float(loss.detach())
        if trainer.strategy.reduce_boolean_decision(not math.isfinite(value), all=False):
            epoch = trainer.current_epoch + 1
            where = f"epoch {epoch}/{max(epoch, progress.planned_epochs(trainer))} step {trainer.global_step + 1}"
            raise TaoError(non_finite_message(f"the training loss is {value}", where, "the training data",
                                              pl_module, trainer))

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = progress.scalars(trainer.callback_metrics)
        values = {name: faultpoints.poison("nan-validation", metrics[name])
                  for name in dict.fromkeys(("val_loss", self.monitor)) if name in metrics}
        bad = [f"{name} is {value}" for name, value in values.items() if not math.isfinite(value)]
        if trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            epoch = progress.validated_epoch(trainer)
            where = f"epoch {epoch}/{max(epoch, progress.planned_epochs(trainer))} step {trainer.global_step}"
            raise TaoError(non_finite_message(" and ".join(bad) or "a validation metric is not finite on another "
                                              "process", where, "the training and validation data", pl_module,
                                              trainer))


def non_finite_message(what: str, where: str, data: str, pl_module, trainer) -> str:
    """``WHAT at WHERE: FIXES, then rerun with --overwrite`` (a resumed run would keep the old learning rate)."""
    lr = getattr(getattr(pl_module, "optim_spec", None), "lr", None)
    fixes = [f"lower optim.lr (now {lr:g})" if lr else "lower optim.lr", f"check {data} for broken examples"]
    if not str(trainer.precision).startswith(("32", "64")):
        fixes.append("train in full precision (trainer.precision=32)")
    return f"{what} at {where}: {', '.join(fixes[:-1])} or {fixes[-1]}, then rerun with --overwrite"


def _cpu_copy(pl_module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}


def devices_for(gpus: int, announce: bool = True) -> Dict[str, Any]:
    """Lightning accelerator/devices/strategy for ``-g``; a CPU stands in where there is no GPU (said when
    ``announce``: by the output owner only)."""
    count = max(1, gpus)
    if torch.cuda.is_available():
        if count > torch.cuda.device_count():
            raise UsageError(f"-g {gpus} asks for more GPUs than the {torch.cuda.device_count()} visible here")
        accelerator = "gpu"
    else:
        accelerator = "cpu"
        if gpus >= 1 and announce:
            log.info("no GPU found: running on the CPU with %d process%s", count, "es" if count > 1 else "")
    strategy = "ddp" if count > 1 else "auto"
    return {"accelerator": accelerator, "devices": count, "strategy": strategy}


def seed_everything(seed: int) -> None:
    """Python, numpy and torch seeds. Called once, by the entrypoint, before the subtask draws any weights."""
    pl.seed_everything(seed, workers=True, verbose=False)


def discard_resume_checkpoint(results: ResultsFolder) -> None:
    """A finished run's archive is final: drop last.ckpt (weights and optimizer state, ~3x the model)."""
    (results.checkpoints / LAST_CHECKPOINT).unlink(missing_ok=True)


def tensorboard_logger(results: ResultsFolder):
    """Lightning's TensorBoardLogger writing into ``<results>/tensorboard`` (a resumed run adds event files
    there); False, with a warning, where the tensorboard package is missing."""
    try:
        from pytorch_lightning.loggers import TensorBoardLogger
        logger = TensorBoardLogger(save_dir=str(results.path), name=TENSORBOARD_DIR, version="",
                                   default_hp_metric=False)
    except ModuleNotFoundError:
        log.warning("no TensorBoard event files: the tensorboard package is not installed (pip install tensorboard)")
        return False
    if results.placement.is_output_owner:
        log.info("tensorboard: tensorboard --logdir %s", results.path / TENSORBOARD_DIR)
    return logger


def build_trainer(spec, results: ResultsFolder, gpus: int, callbacks: Optional[List[pl.Callback]] = None,
                  main_metric: Tuple[str, str] = ("val_loss", "min"), key: Optional[str] = None) -> pl.Trainer:
    """``spec`` is a ``TrainerSpec``; ``main_metric`` the task's (name, max|min), the default ``trainer.monitor``;
    ``key`` the model key, which encrypts last.ckpt."""
    placement = devices_for(gpus, announce=results.placement.is_output_owner)
    if spec.precision == "16-mixed" and placement["accelerator"] == "cpu":
        raise UsageError("trainer.precision=16-mixed needs a GPU; on the CPU use 32 or bf16-mixed")
    progress.route_library_logs()
    monitor, mode = monitor_of(spec, main_metric)
    best = BestModel(monitor, mode, keep_weights=spec.save_best_model)
    return pl.Trainer(
        **placement,
        max_epochs=spec.max_epochs,
        max_steps=spec.max_steps,
        precision=spec.precision,
        gradient_clip_val=spec.gradient_clip_val or None,
        accumulate_grad_batches=spec.accumulate_grad_batches,
        val_check_interval=spec.val_check_interval,
        log_every_n_steps=spec.log_every_n_steps,
        enable_progress_bar=False,  # progress.TrainingProgress draws the bars (spec.enable_progress_bar)
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=tensorboard_logger(results),
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        default_root_dir=str(results.path),
        plugins=[AtomicCheckpointIO(key)],
        callbacks=[ResumableCheckpoint(results.checkpoints, spec.checkpoint_every_n_steps),
                   MetricsLog(results), best, progress.callback(spec.enable_progress_bar, best),
                   StopOnNonFinite(monitor)]  # after the epoch line, which shows the bad value
        + list(callbacks or []) + ([PausePoints()] if faultpoints.active() else []),
    )


def fit(trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule,
        results: ResultsFolder) -> None:
    """Train, resuming from checkpoints/last.ckpt when the results folder holds an unfinished run."""
    ckpt = results.checkpoints / LAST_CHECKPOINT
    owner = results.placement.is_output_owner
    resume = ckpt if (results.resuming or (not owner and ckpt.exists())) else None
    if resume and owner:
        state = trainer.strategy.checkpoint_io.preload(resume)
        log.info("resuming from %s (epoch %d, step %d)", resume, state.get("epoch", 0), state.get("global_step", 0))
        results.record(resumed_from=str(resume))
        del state
    module.train()  # pretrained weights load in eval mode; dropout must be on for training
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    metrics_log = next(c for c in trainer.callbacks if isinstance(c, MetricsLog))
    if not trainer.interrupted and metrics_log.validated_step != trainer.global_step:
        # max_steps can end training mid-epoch, before its validation: the final model is always validated
        trainer.validate(module, datamodule=datamodule, verbose=False)
    best = find_callback(trainer, BestModel)
    if not trainer.interrupted and best is not None:
        best.restore(module, trainer.global_step)


def fit_and_save(task: str, module: pl.LightningModule, datamodule: pl.LightningDataModule, spec, run, *,
                 write_payload: Callable[[Path], None], main_metric: str, main_metric_mode: str = "max") -> Dict:
    """The one training path of every task's train and finetune: Lightning fit (resumable), then the archive.

    ``write_payload(folder)`` writes the model's files (the task's network, its vocabulary or tokenizer and
    labels) into the archive's staging folder; ``checkpoints/trained-model.tao`` then holds the weights of the
    best validation by ``trainer.monitor`` (default ``main_metric``, better when higher for
    ``main_metric_mode="max"``, lower for ``"min"``, e.g. WER), or of the last step with
    ``trainer.save_best_model=false``.
    """
    from tao_launcher.core.model import write_model_archive

    trainer = build_trainer(spec.trainer, run.results, run.gpus, main_metric=(main_metric, main_metric_mode),
                            key=run.key)
    fit(trainer, module, datamodule, run.results)
    if trainer.interrupted:
        raise KeyboardInterrupt
    metrics = kept_metrics(trainer)
    if trainer.global_rank == 0 and run.results.placement.is_output_owner:
        archive = run.results.checkpoints / ARCHIVE_NAME
        write_model_archive(archive, run.key, kind="tao", task=task, metrics=metrics, write_payload=write_payload)
        run.results.record(metrics, model=archive)
        discard_resume_checkpoint(run.results)
        report(trainer, run.results, archive)
    return metrics


def fit_task(task: str, module: pl.LightningModule, train: List[Dict[str, Any]], val: List[Dict[str, Any]],
             train_ds, val_ds, spec, run, *, family, processor, main_metric: str, main_metric_mode: str = "max",
             **loader_options) -> Dict:
    """train's and finetune's one path for every task: encoded examples in length-bucketed batches
    (core/module.py ``BucketedDataModule``, its batch sizes, shuffling and workers from the two data
    sections), then ``fit_and_save``, the archive laid out by the model ``family`` (core/model.py)
    with ``module.net`` and its ``processor`` (tokenizer or vocabulary). ``loader_options`` go to the
    data module as they are (pad_id, collate, length, train_bucketing)."""
    datamodule = BucketedDataModule(
        train, val, seed=spec.trainer.seed, train_batch_size=train_ds.batch_size, val_batch_size=val_ds.batch_size,
        shuffle=train_ds.shuffle, train_num_workers=train_ds.num_workers, val_num_workers=val_ds.num_workers,
        **loader_options)
    return fit_and_save(task, module, datamodule, spec, run, main_metric=main_metric,
                        main_metric_mode=main_metric_mode,
                        write_payload=lambda folder: family.write_payload(folder, module.net, processor))


def find_callback(trainer: pl.Trainer, cls: type):
    return next((c for c in trainer.callbacks if isinstance(c, cls)), None)


def kept_metrics(trainer: pl.Trainer) -> Dict[str, float]:
    """The metrics of the model that goes into the archive: the best validation's (with the epoch and step
    of its metrics.csv row, so that status.json's metrics are one row's), else the last one's."""
    best = find_callback(trainer, BestModel)
    if best is not None and best.keep_weights and best.best is not None:
        return {"epoch": best.best["row_epoch"], "step": best.best["step"],
                **{k: round(v, 6) for k, v in best.best["metrics"].items()}}
    return {k: round(v, 6) for k, v in progress.scalars(trainer.callback_metrics).items()}


def report(trainer: pl.Trainer, results: ResultsFolder, archive: Path) -> None:
    """After the archive is written: the best validation in status.json, the plots, the final summary."""
    best = find_callback(trainer, BestModel)
    shown = find_callback(trainer, progress.TrainingProgress)
    headline = progress.headline_metrics(trainer, best.monitor if best else None)
    record = None
    if best is not None and best.best is not None:
        record = {"monitor": best.monitor, "mode": best.mode, "value": round(best.best["value"], 6),
                  "epoch": best.best["epoch"], "step": best.best["step"], "archived": best.keep_weights,
                  "metrics": {k: round(v, 6) for k, v in best.best["metrics"].items()}}
        results.status["best_model"] = record
        results.record()
    plots = None
    try:
        from tao_launcher.core import plots as plotting
        plots = plotting.training_plots(results.path / METRICS_FILE, shown.step_losses if shown else [], headline,
                                        best_step=record["step"] if record else None, folder=results.path / PLOTS_DIR)
        results.record(plots=plots)
    except Exception as err:  # noqa: BLE001 - the model is written; a picture must not fail the run
        log.warning("no plots: %s: %s", type(err).__name__, err)
    if record and best.keep_weights:
        kept = f"weights of the best validation by {best.monitor}"
    else:
        kept = "weights of the last step" + ("" if best is None or best.keep_weights else
                                             " (trainer.save_best_model=false)")
    progress.final_summary(dict(record, shown=headline, tie=best.tie_break()) if record else None,
                           shown.epochs if shown else 1,
                           shown.elapsed() if shown else 0.0, archive, kept, plots,
                           Path(trainer.logger.log_dir) if trainer.logger else None)
