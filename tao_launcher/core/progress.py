"""What a person reads on the terminal: progress bars, one line per epoch, the final summary of a train.

Every task gets the same output from here: train and finetune through ``TrainingProgress`` (a
Lightning callback), dataset_convert, evaluate and infer through ``track``. The rules:

- The terminal shows tao's own log lines (``TerminalFilter``); library chatter (Lightning's device
  lines, Python warnings, transformers) goes to log.txt only, which keeps everything.
- Bars are drawn on stderr only when it is a terminal (``bars_wanted``), never in CI logs or pipes,
  and train's bars only with ``trainer.enable_progress_bar=true``. A bar closes before a line is
  printed, so log lines never land on a bar; with no bars the output is one line per epoch.
- No metric name is spelled here: a task marks the validation metrics that belong on the epoch
  line with ``self.log(..., prog_bar=True)`` (``headline_metrics``); the monitored metric is always shown.

No torch at import time; tqdm (a dependency of transformers) is imported when a bar is drawn.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from typing import Any, Dict, Iterable, List, Optional

from tao_launcher.core.placement import Placement

log = logging.getLogger("tao.progress")
FILE_ONLY = {"terminal": False}  # ``log.info(..., extra=FILE_ONLY)``: a line for log.txt, not the terminal
BAR_DELAY_S = 2.0  # a loop that ends sooner draws no bar at all


# ----------------------------------------------------------------------------- the terminal log

class TerminalFilter(logging.Filter):
    """tao's own records (unless marked ``FILE_ONLY``) and errors from anyone; the rest is for log.txt."""

    def filter(self, record: logging.LogRecord) -> bool:
        wanted = getattr(record, "terminal", None)
        if wanted is not None:
            return bool(wanted)
        return record.name == "tao" or record.name.startswith("tao.") or record.levelno >= logging.ERROR


class TerminalFormatter(logging.Formatter):
    """The message alone for information, ``warning: ...`` / ``error: ...`` otherwise (log.txt keeps the
    time, level and logger of every line)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno <= logging.INFO else f"{record.levelname.lower()}: {message}"


class TerminalHandler(logging.StreamHandler):
    """stderr, written through ``tqdm.write`` while a bar is drawn so that a line never lands on a bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm_module = sys.modules.get("tqdm")  # loaded only once some bar was made
        bars = getattr(getattr(tqdm_module, "tqdm", None), "_instances", None)
        if not bars:
            return super().emit(record)
        try:
            tqdm_module.tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging must never end the run
            self.handleError(record)


def terminal_handler() -> logging.Handler:
    """The stderr handler of ``ResultsFolder.start_logging``: tao's lines, short, bar-safe."""
    handler = TerminalHandler(sys.stderr)
    handler.setFormatter(TerminalFormatter("%(message)s"))
    handler.addFilter(TerminalFilter())
    return handler


def route_library_logs() -> None:
    """Send Lightning's logger and Python warnings to the root handlers (log.txt; the terminal filters them).

    Lightning gives its logger a console handler of its own when it is imported before logging is set
    up; that would print its device lines and skip log.txt."""
    logging.captureWarnings(True)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


# ----------------------------------------------------------------------------- bars

def bars_wanted() -> bool:
    """Bars only on a terminal, in the process that owns the results folder."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and os.environ.get("TERM") != "dumb" and Placement.from_env().is_output_owner


def _bar(total: Optional[float], desc: str, unit: str, initial: int = 0, delay: float = 0.0):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, delay=delay, leave=False, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.25, smoothing=0.1)


def track(iterable: Iterable, *, total: Optional[int] = None, desc: str = "", unit: str = "it") -> Iterable:
    """``iterable`` with a progress bar on a terminal for loops that last (dataset_convert, evaluate,
    infer); the bare iterable elsewhere. The bar shows only after ``BAR_DELAY_S`` and is erased at the end."""
    if not bars_wanted():
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)

    def wrapped():
        bar = _bar(total, desc, unit, delay=BAR_DELAY_S)
        try:
            for item in iterable:
                yield item
                bar.update(1)
        finally:
            bar.close()
    return wrapped()


def file_lines(f, path, min_bytes: int = 16 * 2**20):
    """The lines of the binary file ``f`` (opened from ``path``), with a bar by bytes read when the file is
    big enough to take a while (dataset_convert of a real corpus) and stderr is a terminal."""
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    if size < min_bytes or not bars_wanted():
        yield from f
        return
    bar = _bar(size, f"reading {os.path.basename(str(path))}", "B", delay=BAR_DELAY_S)
    bar.unit_scale, bar.unit_divisor = True, 1024
    try:
        for raw in f:
            bar.update(len(raw))
            yield raw
    finally:
        bar.close()


# ----------------------------------------------------------------------------- train and finetune

def format_metrics(metrics: Dict[str, float], names: Iterable[str]) -> str:
    return ", ".join(f"{name} {metrics[name]:.4f}" for name in names if name in metrics)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def scalars(metrics: Dict[str, Any]) -> Dict[str, float]:
    """Lightning's logged metrics (tensors) as plain numbers."""
    out = {}
    for name, value in metrics.items():
        if hasattr(value, "numel"):
            if value.numel() != 1:
                continue
            value = value.item()
        out[name] = float(value)
    return out


def headline_metrics(trainer, monitor: Optional[str] = None) -> List[str]:
    """The validation metrics of the epoch line: val_loss, those the task logs with ``prog_bar=True``,
    and the monitored one. A task that marks none gets every validation metric."""
    logged = [k for k in scalars(trainer.callback_metrics) if k.startswith("val_")]
    marked = [k for k in trainer.progress_bar_metrics if k.startswith("val_") and k != "val_loss"]
    names = (["val_loss"] if "val_loss" in logged else []) + (marked or [k for k in logged if k != "val_loss"])
    if monitor and monitor not in names and monitor in logged:
        names.append(monitor)
    return names


def planned_epochs(trainer) -> int:
    """The epochs this run will train: max_epochs, or fewer when max_steps ends it sooner."""
    epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else 0
    batches = trainer.num_training_batches
    if trainer.max_steps and trainer.max_steps > 0 and batches and not math.isinf(batches):
        per_epoch = max(1, math.ceil(batches / max(1, trainer.accumulate_grad_batches)))
        by_steps = math.ceil(trainer.max_steps / per_epoch)
        epochs = min(epochs, by_steps) if epochs else by_steps
    return max(1, epochs)


def validated_epoch(trainer) -> int:
    """The epoch (from 1) a validation belongs to. After fit (max_steps ended an epoch early and
    ``trainer.validate`` checks the final model) Lightning already counts that epoch as done."""
    epoch = trainer.current_epoch + 1
    done = trainer.fit_loop.epoch_progress.current.completed
    return min(epoch, done) if done and trainer.state.fn != "fit" else epoch


class TrainingProgress:
    """Bars for training and validation, one line per validation, and the per-step loss history.

    The epoch line: ``epoch 2/3  step 30  train_loss 0.5123, val_loss ..., val_acc ... (12 s) *best``;
    train_loss is the mean over the epoch's steps so far. ``step_losses`` ([epoch, step, mean loss]
    per optimizer step) feeds the plots and travels in checkpoints, so a resumed run keeps its curves.
    A Lightning callback: ``callback()`` builds it (Lightning is imported only by training).
    """

    def __init__(self, bars: bool, best=None):
        self.bars = bars and bars_wanted()
        self.best = best  # the BestModel callback, to mark the best line
        self.step_losses: List[List[float]] = []
        self.epochs = 1
        self._bar = None
        self._t_fit = self._t_line = None

    # Lightning hooks (the class is mixed into pl.Callback by ``callback``)
    def on_fit_start(self, trainer, pl_module):
        self._t_fit = self._t_line = time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        self.epochs = planned_epochs(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.bars and self._bar is None and trainer.is_global_zero:
            total = trainer.num_training_batches
            epoch = trainer.current_epoch + 1
            self._bar = _bar(None if math.isinf(total) else total, f"epoch {epoch}/{max(epoch, self.epochs)} train",
                             "batch", initial=batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = trainer.callback_metrics.get("train_loss")
        if loss is not None:
            loss, step, epoch = float(loss), trainer.global_step, trainer.current_epoch
            last = self.step_losses[-1] if self.step_losses else None
            if last is not None and last[1] == step:  # gradient accumulation: one point per optimizer step
                last[2], last[3] = (last[2] * last[3] + loss) / (last[3] + 1), last[3] + 1
            else:
                self.step_losses.append([epoch, step, loss, 1])
        if self._bar is not None:
            self._bar.update(batch_idx + 1 - self._bar.n)
            if loss is not None:
                self._bar.set_postfix_str(f"train_loss {loss:.4f}", refresh=False)

    def on_train_epoch_end(self, trainer, pl_module):
        self._close()

    def on_validation_start(self, trainer, pl_module):
        self._close()  # the train bar goes; a mid-epoch validation draws it again afterwards
        if self._t_line is None:  # trainer.validate() outside fit
            self._t_fit = self._t_line = time.perf_counter()

    def on_validation_epoch_start(self, trainer, pl_module):
        if self.bars and not trainer.sanity_checking and trainer.is_global_zero:
            total = sum(trainer.num_val_batches) if trainer.num_val_batches else None
            epoch = validated_epoch(trainer)
            self._bar = _bar(None if total is None or math.isinf(total) else total,
                             f"epoch {epoch}/{max(epoch, self.epochs)} validate", "batch")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self._bar is not None:
            self._bar.update(1)

    def on_validation_end(self, trainer, pl_module):
        self._close()
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = scalars(trainer.callback_metrics)
        monitor = getattr(self.best, "monitor", None)
        epoch = validated_epoch(trainer)
        parts = [f"train_loss {self.epoch_loss(epoch - 1):.4f}"] if self.step_losses else []
        parts.append(format_metrics(metrics, headline_metrics(trainer, monitor)))
        now = time.perf_counter()
        mark = " *best" if self.best is not None and self.best.is_best_step(trainer.global_step) else ""
        log.info("epoch %d/%d  step %d  %s (%s)%s", epoch, max(epoch, self.epochs), trainer.global_step,
                 ", ".join(p for p in parts if p), format_seconds(now - self._t_line), mark)
        self._t_line = now

    def on_exception(self, trainer, pl_module, exception):
        self._close()

    def on_fit_end(self, trainer, pl_module):
        self._close()

    def state_dict(self) -> Dict[str, Any]:
        return {"step_losses": self.step_losses}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.step_losses = [list(row) for row in state.get("step_losses", [])]

    # helpers
    def epoch_loss(self, epoch: int) -> float:
        """Mean training loss of ``epoch`` (from 0, as in metrics.csv), over its steps so far."""
        losses = [row[2] for row in self.step_losses if row[0] == epoch]
        return sum(losses) / len(losses) if losses else float("nan")

    def elapsed(self) -> float:
        return time.perf_counter() - self._t_fit if self._t_fit is not None else 0.0

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def callback(bars: bool, best=None):
    """A ``TrainingProgress`` that Lightning calls (the Lightning base class is bound here, not at import)."""
    import pytorch_lightning as pl

    cls = type("TrainingProgressCallback", (TrainingProgress, pl.Callback), {})
    return cls(bars, best)


def final_summary(best: Optional[Dict[str, Any]], epochs: int, seconds: float, archive, kept: str,
                  plots=None, tensorboard=None) -> None:
    """The last lines of a train: the best validation, time, where the model, plots and event files are."""
    if best is not None:
        tie = f" ({best['tie']})" if best.get("tie") else ""  # how a tie on the monitor was broken
        log.info("best: epoch %d/%d  step %d  %s%s", best["epoch"], epochs, best["step"],
                 format_metrics(best["metrics"], best["shown"]), tie)
    log.info("trained in %s; model: %s (%s)", format_seconds(seconds), archive, kept)
    if plots is not None:
        log.info("plots: %s", plots)
    if tensorboard is not None:
        log.info("tensorboard: tensorboard --logdir %s", tensorboard)
