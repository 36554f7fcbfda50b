"""The pictures of the results folder, drawn with matplotlib's Agg backend (no display needed).

After train and finetune, ``plots/`` holds (``training_plots``):

    loss.png          training loss per step and per epoch (mean of its steps), val_loss beside it
    val_metrics.png   one panel per validation metric of the epoch line (val_acc, val_f1, val_wer, ...);
                      the kept (best) validation is starred

After evaluate of a task that labels sentences or tokens, ``confusion_matrix*.png`` (``save_confusion_matrix``).

The curves come from ``metrics.csv`` (a row per validation) and the per-step losses that
``progress.TrainingProgress`` keeps (they travel in checkpoints, so a resumed run draws its whole history).
No metric name is spelled here. matplotlib (~0.5 s to import) is imported only when a picture is drawn.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

log = logging.getLogger("tao.plots")
MAX_ANNOTATED_CLASSES = 30  # a confusion matrix writes its counts in the cells up to this many labels


def _figure(**kwargs):
    """A matplotlib figure on the Agg backend (no pyplot, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(**kwargs)


def _save(figure, path: Path) -> Path:
    """PNG written beside, then renamed: never half a picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(tmp, dpi=110, format="png")
    os.replace(tmp, path)
    return path


def _number(text: Optional[str]) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_metrics(path: Path) -> List[Dict[str, float]]:
    """metrics.csv as numbers (a column a row lacks reads NaN)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items() if k} for row in csv.DictReader(f)]


def training_plots(metrics_csv: Path, step_losses: Sequence[Sequence[float]], headline: Sequence[str],
                   best_step: Optional[int], folder: Path) -> Path:
    """loss.png and val_metrics.png in ``folder``; ``step_losses`` rows are [epoch from 0, step, loss, ...]."""
    rows = read_metrics(metrics_csv)
    epoch_of_step = {int(r[1]): int(r[0]) for r in step_losses}
    for row in rows:  # the epoch a validation follows, from 1 (metrics.csv counts from 0)
        row["_epoch"] = epoch_of_step.get(int(row.get("step", -1)), int(row.get("epoch", 0))) + 1
    _loss_plot(rows, step_losses, best_step, folder / "loss.png")
    names = [n for n in headline if n != "val_loss" and any(not math.isnan(r.get(n, math.nan)) for r in rows)]
    if names:
        _metrics_plot(rows, names, best_step, folder / "val_metrics.png")
    return folder


def _loss_plot(rows, step_losses, best_step, path: Path) -> Path:
    figure = _figure(figsize=(11, 4.2))
    per_step, per_epoch = figure.subplots(1, 2)
    steps = [r[1] for r in step_losses]
    if steps:
        per_step.plot(steps, [r[2] for r in step_losses], color="tab:blue", lw=0.8, alpha=0.8, label="train_loss")
    val = [(r["step"], r["val_loss"]) for r in rows if not math.isnan(r.get("val_loss", math.nan))]
    if val:
        per_step.plot(*zip(*val), "o-", color="tab:orange", label="val_loss")
    _star(per_step, val, best_step)
    per_step.set(title="loss per step", xlabel="step", ylabel="loss")

    epochs: Dict[int, List[float]] = {}
    for r in step_losses:
        epochs.setdefault(int(r[0]) + 1, []).append(r[2])
    if epochs:
        xs = sorted(epochs)
        per_epoch.plot(xs, [sum(epochs[x]) / len(epochs[x]) for x in xs], "o-", color="tab:blue",
                       label="train_loss (epoch mean)")
    last_of_epoch = {r["_epoch"]: r for r in rows if not math.isnan(r.get("val_loss", math.nan))}
    if last_of_epoch:
        xs = sorted(last_of_epoch)
        per_epoch.plot(xs, [last_of_epoch[x]["val_loss"] for x in xs], "o-", color="tab:orange", label="val_loss")
    per_epoch.set(title="loss per epoch", xlabel="epoch", ylabel="loss")
    per_epoch.xaxis.get_major_locator().set_params(integer=True)
    for axes in (per_step, per_epoch):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    figure.tight_layout()
    return _save(figure, path)


def _metrics_plot(rows, names: Sequence[str], best_step, path: Path) -> Path:
    columns = min(3, len(names))
    lines = math.ceil(len(names) / columns)
    figure = _figure(figsize=(4.2 * columns, 3.4 * lines))
    axes_list = figure.subplots(lines, columns, squeeze=False).flatten()
    by_epoch = len({r["_epoch"] for r in rows}) == len(rows)  # one validation per epoch: x is the epoch
    for axes, name in zip(axes_list, names):
        points = [(r["_epoch"] if by_epoch else r["step"], r[name], r["step"]) for r in rows
                  if not math.isnan(r.get(name, math.nan))]
        axes.plot([p[0] for p in points], [p[1] for p in points], "o-", color="tab:green")
        _star(axes, [(p[0], p[1]) for p in points if p[2] == best_step], best_step, always=True)
        axes.set(title=name, xlabel="epoch" if by_epoch else "step")
        if by_epoch:
            axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
    for axes in axes_list[len(names):]:
        axes.set_visible(False)
    figure.tight_layout()
    return _save(figure, path)


def _star(axes, points, best_step, always: bool = False) -> None:
    """Mark the kept validation: ``points`` are (x, y); without ``always`` they are (step, y) to match."""
    chosen = points if always else [p for p in points if p[0] == best_step]
    if chosen and best_step is not None:
        axes.plot([chosen[-1][0]], [chosen[-1][1]], "*", color="crimson", markersize=14, label="kept model")


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str) -> Path:
    """A (true x predicted) count matrix as a PNG: cells shaded by the share of their row (recall), counts
    written in them (up to ``MAX_ANNOTATED_CLASSES`` labels)."""
    counts = [[int(c) for c in row] for row in matrix]
    n = len(labels)
    shares = [[c / max(1, sum(row)) for c in row] for row in counts]
    side = min(16.0, max(4.5, 0.45 * n + 2.5))
    figure = _figure(figsize=(side + 1.2, side))
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true label's rows")
    axes.set_xticks(range(n), labels=labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    axes.set_yticks(range(n), labels=labels)
    axes.set(xlabel="predicted", ylabel="true", title=title)
    if n <= MAX_ANNOTATED_CLASSES:
        for i in range(n):
            for j in range(n):
                axes.text(j, i, str(counts[i][j]), ha="center", va="center", fontsize=9 if n < 12 else 7,
                          color="white" if shares[i][j] > 0.6 else "black")
    figure.tight_layout()
    return _save(figure, path)


def save_confusion_matrix(run, matrix, labels: Sequence[str], name: str = "confusion_matrix.png",
                          title: str = "confusion matrix") -> Optional[Path]:
    """evaluate's picture: ``confusion_matrix`` into the results folder, recorded in status.json artifacts.
    Without matplotlib the run goes on with a warning (the numbers are in evaluation_report.json)."""
    rows = matrix.tolist() if hasattr(matrix, "tolist") else matrix
    try:
        path = confusion_matrix(rows, labels, run.results.path / name, title)
    except ImportError as err:
        log.warning("no %s: %s (pip install matplotlib)", name, err)
        return None
    run.results.record(**{name.rsplit(".", 1)[0]: path})
    log.info("confusion matrix: %s", path)
    return path
