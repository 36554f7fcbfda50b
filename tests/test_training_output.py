"""What train prints on a terminal and in a log, and the best model it keeps, through the real `tao` command.

One 2-epoch train of the sample in a pseudo-terminal (bars drawn), monitoring val_loss with mode=max so that
the kept model is the first epoch's, not the last one's; then a short finetune of the session's
trained model with its output captured (a log, not a terminal). About 45 s on 2 cores.
"""

from __future__ import annotations

import csv
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import KEY, TAO, status, tao, tao_env, train_args

TC = "text_classification"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  step (\d+)  train_loss [\d.]+, val_loss [\d.]+, val_acc [\d.]+, "
                        r"val_macro_f1 [\d.]+ \(\d+ s\)( \*best)?$")


def tao_in_terminal(*args, columns: int = 120) -> tuple:
    """Run `tao ARGS` with stdout and stderr on a pseudo-terminal of ``columns``; (exit code, what it showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(TAO + [str(a) for a in args], env=tao_env(TERM="xterm"), stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 5)[0]:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    if proc.poll() is None:
        proc.kill()
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", errors="replace")


def shown_lines(screen: str) -> list:
    """The lines a terminal keeps: each carriage return starts the line over (bars redraw in place)."""
    return [line.split("\r")[-1].rstrip() for line in screen.replace("\r\n", "\n").split("\n")]


def test_train_on_a_terminal_prints_bars_an_epoch_line_each_and_keeps_the_best_model(sample_data, tmp_path):
    results = tmp_path / "train"
    code, screen = tao_in_terminal(*train_args(sample_data, results, "trainer.max_epochs=2",
                                               "trainer.enable_progress_bar=true", "training_ds.num_samples=96",
                                               "trainer.monitor=val_loss", "trainer.monitor_mode=max"))
    assert code == 0, screen[-3000:]
    lines = shown_lines(screen)
    epochs = [EPOCH_LINE.match(line) for line in lines if line.startswith("epoch ") and "  step " in line]
    assert all(epochs) and [m.group(1, 2) for m in epochs] == [("1", "2"), ("2", "2")], lines
    assert "epoch 1/2 train:" in screen and "epoch 2/2 validate:" in screen  # one bar per phase, counted from 1
    assert not re.search(r"epoch 0/|epoch 3/|Epoch \d", screen)
    tensorboard = next(i for i, line in enumerate(lines) if line == f"tensorboard: tensorboard --logdir "
                                                                      f"{results / 'tensorboard'}")
    assert tensorboard < next(i for i, line in enumerate(lines) if EPOCH_LINE.match(line))  # printed at the start
    for chatter in ("GPU available", "TPU available", "rank_zero", "[INFO]", "val_precision_negative", "train_loss="):
        assert chatter not in screen, chatter  # library lines and the long metrics row live in log.txt only
    log = (results / "log.txt").read_text()
    assert "GPU available" in log and "val_precision_negative=" in log
    assert KEY not in screen and KEY not in log

    # the best validation by val_loss (mode max) is epoch 1's: status.json and the archive agree with metrics.csv
    rows = list(csv.DictReader(open(results / "metrics.csv")))
    best_row = max(rows, key=lambda r: float(r["val_loss"]))
    assert best_row is not rows[-1], "val_loss did not fall in epoch 2: the test needs the last epoch not to be best"
    best = status(results)["best_model"]
    assert (best["monitor"], best["mode"], best["epoch"], best["step"]) == \
        ("val_loss", "max", int(best_row["epoch"]) + 1, int(best_row["step"]))
    assert any(line.startswith(f"best: epoch {best['epoch']}/2  step {best['step']}  val_loss ") for line in lines)
    assert epochs[0].group(4) == " *best" and epochs[1].group(4) is None
    evaluated = tmp_path / "evaluate"
    tao(TC, "evaluate", "-r", evaluated, "-k", KEY, "-m", results / "checkpoints" / "trained-model.tao",
        f"test_ds.file_path={sample_data / 'dev.tsv'}", check=True)
    # the archive is epoch 1's model (metrics.csv rounds to 6 decimals)
    assert status(evaluated)["metrics"]["test_acc"] == pytest.approx(float(best_row["val_acc"]), abs=1e-6)
    assert (evaluated / "confusion_matrix.png").read_bytes()[:8] == PNG_MAGIC

    for name in ("loss.png", "val_metrics.png"):
        png = results / "plots" / name
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
    assert list((results / "tensorboard").glob("events.out.tfevents.*"))


def test_finetune_into_a_log_prints_lines_without_bars(trained, sample_data, tmp_path):
    """Output that is not a terminal (CI logs, pipes): no carriage returns, one line per validation."""
    proc = tao(TC, "finetune", "-r", tmp_path / "ft", "-k", KEY, "-m", trained / "checkpoints" / "trained-model.tao",
               f"finetuning_ds.file_path={sample_data / 'train.tsv'}", f"validation_ds.file_path={sample_data / 'dev.tsv'}",
               "trainer.max_steps=3", "trainer.max_epochs=5", check=True)
    assert "\r" not in proc.stderr + proc.stdout
    epoch_lines = [line for line in proc.stderr.splitlines() if EPOCH_LINE.match(line)]
    assert [EPOCH_LINE.match(line).group(1, 2, 3) for line in epoch_lines] == [("1", "1", "3")], proc.stderr
    st = status(tmp_path / "ft")
    assert st["best_model"]["step"] == 3 and st["best_model"]["monitor"] == "val_acc"
    assert Path(st["artifacts"]["plots"], "loss.png").read_bytes()[:8] == PNG_MAGIC
