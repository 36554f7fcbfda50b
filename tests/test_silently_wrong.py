"""Runs that used to finish with exit 0 and a wrong result (docs/reliability.md, "Silently wrong"), through the real
`tao` command: a diverging loss, a tie on the monitored metric, a num_samples draw that lacks a label.

Every task's share is cheaper elsewhere: the non-finite loss rows of tests/test_bad_inputs.py, the readers in
tests/test_num_samples.py, the tie rules in tests/core/test_trainer_parts.py. Here, once, what a user sees.
"""

from __future__ import annotations

import csv
import json

from conftest import KEY, assert_error, status, tao, tao_env

TC = "text_classification"
SENTENCES = ["a fine film", "a dull film", "what a movie", "bad acting", "great fun", "a waste of time"]


def tiny_train(data, results, *extra):
    return [TC, "train", "-r", results, "-k", KEY, "model.dataset.num_classes=2",
            f"training_ds.file_path={data / 'train.tsv'}", f"validation_ds.file_path={data / 'dev.tsv'}",
            "training_ds.batch_size=1", "trainer.enable_progress_bar=false", *extra]


def write_data(folder, train_labels):
    folder.mkdir()
    (folder / "train.tsv").write_text("".join(f"{s}\t{y}\n" for s, y in zip(SENTENCES, train_labels)))
    (folder / "dev.tsv").write_text("".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES[:4])))
    return folder


def test_a_diverging_overwrite_run_stops_and_puts_the_earlier_model_back(tmp_path):
    """The loss turns NaN: exit 1 with the step and what to try, no archive, and the finished run it was to replace
    is back as it was. The num_samples=1 draw (of a file with two classes) warns on the terminal first."""
    data = write_data(tmp_path / "data", [1, 1, 1, 1, 1, 0])
    results = tmp_path / "train"
    (results / "checkpoints").mkdir(parents=True)
    (results / "status.json").write_text(json.dumps({"task": TC, "subtask": "train", "state": "finished"}))
    model = results / "checkpoints" / "trained-model.tao"
    model.write_bytes(b"the only trained model")

    proc = tao(*tiny_train(data, results, "training_ds.num_samples=1"), "--overwrite",
               env=tao_env(TAO_TEST_FAULT="nan-training-loss"))
    assert_error(proc, 1, "the training loss is nan at epoch 1/", " step 1: lower optim.lr (now ",
                 "then rerun with --overwrite")
    assert (f"warning: num_samples=1 draws 1 of the 6 sentences of {data / 'train.tsv'}, which lack 1 of its 2 "
            f"class ids") in proc.stderr
    assert model.read_bytes() == b"the only trained model" and status(results)["state"] == "finished"
    assert not list(results.rglob("*.partial")) and not (results / "checkpoints" / "last.ckpt").exists()


def test_a_flat_monitored_metric_keeps_the_lowest_val_loss_not_the_first_epoch(tmp_path):
    """val_acc is the same after every epoch (a tiny learning rate) while val_loss falls: the archive holds the
    last epoch, and the best line says why (it used to be epoch 1)."""
    data = write_data(tmp_path / "data", [0, 1, 0, 1, 0, 1])   # the labels of dev.tsv, and two more
    results = tmp_path / "train"
    proc = tao(*tiny_train(data, results, "trainer.max_epochs=2", "optim.lr=1e-6"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(results / "metrics.csv")))
    assert rows[0]["val_acc"] == rows[1]["val_acc"] and float(rows[1]["val_loss"]) < float(rows[0]["val_loss"])
    best = status(results)["best_model"]
    assert best["epoch"] == 2 and best["value"] == float(rows[1]["val_acc"])
    assert "(val_acc tied with 1 other validation: kept the lowest val_loss)" in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("best: epoch 2/2  step ")], proc.stderr
