"""punctuation_and_capitalization end to end through the real `tao` command, on the paragraphs of a SQuAD v2 sample.

One short train per session; the subtasks that only read its archive run two at a time, as they spend
most of their time importing torch. The IWSLT convert and the bad inputs need no model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import KEY, assert_error, assert_ok, concurrently, dataset, lines, status, tao

PC = "punctuation_and_capitalization"
ARCHIVE = Path("checkpoints") / "trained-model.tao"
# calibrated on 2 idle CPU cores (75 s): all 374 train lines (608 windows), 2 epochs: val_capit_f1 0.86 and
# val_punct_f1 0.18, where a model one step away from its random heads scores 0.28 and 0.05 (150 lines learn
# capitalization, 0.73, but no punctuation mark at all)
TRAIN = ["validation_ds.num_samples=50", "trainer.max_epochs=2", "optim.lr=5e-4", "training_ds.batch_size=16",
         "trainer.enable_progress_bar=false"]
MIN_CAPIT_F1 = 0.6
MIN_PUNCT_F1 = 0.1
EVAL_LINES = 50
INFER_LINES = 20
LONG_WORDS = 400
RAW = "Hello, World! How are you? I'm fine -- thanks.  \"Quoted\" (words) and well-known U.N. 3.5"



def bare_words(restored: str) -> list:
    """Restored text back to the words fed to the model: lower-cased, without the marks , . ?"""
    return [word.lower().rstrip(",.?") for word in restored.split()]


# ----------------------------------------------------------------------------- session fixtures

@pytest.fixture(scope="session")
def punct_data(tmp_path_factory) -> Path:
    squad = json.loads((dataset("squad_v2") / "squad_v2_sample_12articles.json").read_text(encoding="utf-8"))
    contexts = list(dict.fromkeys(" ".join(p["context"].split()) for a in squad["data"] for p in a["paragraphs"]))
    root = tmp_path_factory.mktemp("punct")
    raw = root / "contexts.txt"
    raw.write_text("\n".join(contexts) + "\n", encoding="utf-8")
    tao(PC, "dataset_convert", "-r", root / "convert", f"source_data_dir={raw}", f"target_data_dir={root / 'data'}",
        "dev_ratio=0.2", check=True)
    return root / "data"


@pytest.fixture(scope="session")
def punct_trained(punct_data, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("punct-train") / "train"
    tao(PC, "train", "-r", results, "-k", KEY, f"data_dir={punct_data}", *TRAIN, check=True)
    return results


@pytest.fixture(scope="session")
def punct_input(punct_data, tmp_path_factory) -> Path:
    """20 dev lines (lower case, no punctuation), a line of raw prose, and one line of exactly 400 words."""
    dev = lines(punct_data / "text_dev.txt")
    words = " ".join(dev[INFER_LINES:]).split()
    assert len(words) >= LONG_WORDS
    path = tmp_path_factory.mktemp("punct-input") / "texts.txt"
    path.write_text("\n".join(dev[:INFER_LINES] + [RAW, " ".join(words[:LONG_WORDS])]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def punct_runs(punct_trained, punct_data, punct_input, tmp_path_factory) -> dict:
    """evaluate, infer, both exports, then infer_onnx of the ONNX export: name -> (process, results folder)."""
    root = tmp_path_factory.mktemp("punct-runs")
    model = punct_trained / ARCHIVE
    done = concurrently(
        evaluate=[PC, "evaluate", "-r", root / "evaluate", "-k", KEY, "-m", model, f"data_dir={punct_data}",
                  f"test_ds.num_samples={EVAL_LINES}"],
        infer=[PC, "infer", "-r", root / "infer", "-k", KEY, "-m", model, f"input_file={punct_input}"],
        ONNX=[PC, "export", "-r", root / "ONNX", "-k", KEY, "-m", model, "export_format=ONNX"],
        RIVA=[PC, "export", "-r", root / "RIVA", "-k", KEY, "-m", model, "export_format=RIVA"],
    )
    if done["ONNX"].returncode == 0:
        done["infer_onnx"] = tao(PC, "infer_onnx", "-r", root / "infer_onnx", "-k", KEY, "-m",
                                 root / "ONNX" / "exported-model.eonnx", f"input_file={punct_input}")
    return {name: (proc, root / name) for name, proc in done.items()}


@pytest.fixture
def small_data(punct_data, tmp_path) -> Path:
    """A copy of the converted data cut to 12 train and 6 dev lines, for the bad-input tests."""
    small = tmp_path / "small"
    small.mkdir()
    for split, count in (("train", 12), ("dev", 6)):
        for kind in ("text", "labels"):
            name = f"{kind}_{split}.txt"
            (small / name).write_text("\n".join(lines(punct_data / name)[:count]) + "\n", encoding="utf-8")
    for name in ("punct_label_ids.csv", "capit_label_ids.csv"):
        (small / name).write_text((punct_data / name).read_text())
    return small


# ----------------------------------------------------------------------------- the workflow

def test_dataset_convert_splits_the_paragraphs(punct_data):
    train, dev = lines(punct_data / "text_train.txt"), lines(punct_data / "text_dev.txt")
    assert len(dev) == round(0.2 * (len(train) + len(dev))) and len(train) + len(dev) == 468
    assert lines(punct_data / "punct_label_ids.csv") == ["O", ",", ".", "?"]
    assert lines(punct_data / "capit_label_ids.csv") == ["O", "U"]
    for text, labels in zip(dev, lines(punct_data / "labels_dev.txt")):
        assert len(text.split()) == len(labels.split()) and text == text.lower()


def test_train_writes_archive_and_both_heads_metrics(punct_trained):
    st = status(punct_trained)
    assert st["state"] == "finished" and st["task"] == PC and (punct_trained / ARCHIVE).is_file()
    metrics = st["metrics"]
    assert MIN_PUNCT_F1 < metrics["val_punct_f1"] <= 1.0  # measured 0.18; random heads 0.05
    assert metrics["val_capit_f1"] > MIN_CAPIT_F1  # measured 0.86; random heads 0.28
    assert metrics["train_samples_per_sec"] > 0
    header = lines(punct_trained / "metrics.csv")[0].split(",")
    for column in ("epoch", "step", "train_loss", "val_loss", "val_punct_f1", "val_capit_f1", "val_punct_acc",
                   "val_capit_acc", "train_samples_per_sec"):
        assert column in header
    assert len(lines(punct_trained / "metrics.csv")) == 3  # a row per epoch
    assert "training on 374 lines" in (punct_trained / "log.txt").read_text()


def test_evaluate_reports_both_heads_per_label(punct_runs, punct_data):
    proc, results = punct_runs["evaluate"]
    assert_ok(proc)
    report = json.loads((results / "evaluation_report.json").read_text())
    from tao_launcher.core.textfiles import subset

    drawn = subset(list(zip(lines(punct_data / "text_dev.txt"), lines(punct_data / "labels_dev.txt"))), EVAL_LINES,
                   source="labels_dev.txt")   # test_ds.num_samples: the lines evaluate draws
    words = sum(len(text.split()) for text, _ in drawn)
    for head, labels in (("punctuation", ["O", ",", ".", "?"]), ("capitalization", ["O", "U"])):
        assert set(report[head]) >= set(labels) | {"accuracy", "macro_f1", "confusion_matrix", "support"}
        assert report[head]["support"] == words == sum(report[head][label]["support"] for label in labels)
        assert sum(map(sum, report[head]["confusion_matrix"])) == words
        assert (results / f"confusion_matrix_{head}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gold = [label for _, line in drawn for label in line.split()]
    assert report["capitalization"]["U"]["support"] == sum(label[1] == "U" for label in gold)
    assert report["punctuation"]["."]["support"] == sum(label[0] == "." for label in gold)
    metrics = status(results)["metrics"]
    punct = report["punctuation"]
    assert metrics["test_punct_f1"] == pytest.approx((punct[","]["f1"] + punct["."]["f1"] + punct["?"]["f1"]) / 3)
    assert metrics["test_capit_f1"] == pytest.approx(report["capitalization"]["U"]["f1"])
    assert metrics["test_capit_f1"] > MIN_CAPIT_F1  # measured 0.86 (random heads: 0.28)
    assert metrics["test_punct_f1"] > MIN_PUNCT_F1  # measured 0.18 (random heads: 0.05)
    assert "punctuation:" in proc.stdout and "capitalization:" in proc.stdout and "capitalization F1 (U)" in proc.stdout


def test_infer_keeps_every_word_and_restores_case_and_marks(punct_runs, punct_input):
    from tao_launcher.tasks.punctuation_and_capitalization.data import normalize_input

    proc, results = punct_runs["infer"]
    assert_ok(proc)
    texts = lines(punct_input)
    rows = json.loads((results / "infer_results.json").read_text())
    assert [r["text"] for r in rows] == texts
    for row in rows[:INFER_LINES]:
        assert bare_words(row["restored"]) == row["text"].split()  # no word dropped, added or changed
    assert bare_words(rows[INFER_LINES]["restored"]) == normalize_input(RAW) == \
        ["hello", "world", "how", "are", "you", "i'm", "fine", "thanks", "quoted", "words", "and", "well-known",
         "un", "35"]
    assert lines(results / "infer_results.txt") == [r["restored"] for r in rows]
    assert [line for line in proc.stdout.splitlines() if line] == [r["restored"] for r in rows]
    restored = " ".join(r["restored"] for r in rows)
    assert re.search(r"\b[A-Z][a-z]", restored)  # a trained model capitalises some words, punctuates others
    assert re.search(r"[a-z0-9][.,]( |$)", restored)
    assert status(results)["metrics"]["inputs"] == len(texts)


def test_a_400_word_text_is_segmented_and_comes_back_whole(punct_runs, punct_input):
    proc, results = punct_runs["infer"]
    assert_ok(proc)
    row = json.loads((results / "infer_results.json").read_text())[-1]
    assert len(row["text"].split()) == LONG_WORDS
    assert bare_words(row["restored"]) == row["text"].split()
    assert re.search(r"\b[A-Z]", " ".join(row["restored"].split()[300:]))  # the last segments are labelled too


def test_infer_onnx_gives_the_same_output_as_infer(punct_runs):
    assert "infer_onnx" in punct_runs, "ONNX export failed"
    assert_ok(punct_runs["infer_onnx"][0])
    torch_rows = json.loads((punct_runs["infer"][1] / "infer_results.json").read_text())
    onnx_rows = json.loads((punct_runs["infer_onnx"][1] / "infer_results.json").read_text())
    assert onnx_rows == torch_rows


def test_exported_onnx_graph_has_both_heads_with_dynamic_axes(punct_runs):
    import onnx

    from tao_launcher.core.archive import open_archive

    proc, results = punct_runs["ONNX"]
    assert_ok(proc)
    with open_archive(results / "exported-model.eonnx", KEY) as folder:
        graph = onnx.load(str(folder / "model.onnx")).graph
        assert lines(folder / "punct_label_ids.csv") == ["O", ",", ".", "?"]
        assert lines(folder / "capit_label_ids.csv") == ["O", "U"]
    for tensor in graph.input:
        assert [d.dim_param for d in tensor.type.tensor_type.shape.dim] == ["batch", "sequence"]
    outputs = {o.name: o.type.tensor_type.shape.dim for o in graph.output}
    assert set(outputs) == {"punct_logits", "capit_logits"}
    for name, classes in (("punct_logits", 4), ("capit_logits", 2)):
        dims = outputs[name]
        assert [d.dim_param for d in dims[:2]] == ["batch", "sequence"] and dims[2].dim_value == classes


def test_riva_export_names_both_outputs_and_label_files(punct_runs):
    import yaml

    from tao_launcher.core.archive import open_archive

    proc, results = punct_runs["RIVA"]
    assert_ok(proc)
    with open_archive(results / "exported-model.riva", KEY) as folder:
        config = yaml.safe_load((folder / "riva_config.yaml").read_text())["riva_model"]
    assert config["task"] == PC
    assert [o["name"] for o in config["outputs"]] == ["punct_logits", "capit_logits"]
    assert config["labels_files"] == ["punct_label_ids.csv", "capit_label_ids.csv"]


def test_iwslt_convert_warns_once_that_capitalization_cannot_be_learned(tmp_path):
    iwslt = dataset("iwslt2012_punct") / "dev2012"
    proc = tao(PC, "dataset_convert", "-r", tmp_path / "conv", f"source_data_dir={iwslt}",
               f"target_data_dir={tmp_path / 'data'}")
    assert_ok(proc)
    assert proc.stderr.count("cannot learn capitalization") == 1
    assert "IWSLT form" in proc.stderr and str(iwslt) in proc.stderr
    labels = lines(tmp_path / "data" / "labels_train.txt")
    assert len(labels) > 100 and {label[1] for line in labels[:200] for label in line.split()} == {"O"}
    assert status(tmp_path / "conv")["state"] == "finished"


# ----------------------------------------------------------------------------- bad input

def _assert_train_failed_cleanly(results: Path) -> None:
    assert status(results)["state"] == "failed"
    assert not (results / ARCHIVE).exists() and not (results / "checkpoints" / "last.ckpt").exists()


def test_a_labels_file_with_a_line_too_few_names_the_missing_line(small_data, tmp_path):
    labels = small_data / "labels_train.txt"
    labels.write_text("\n".join(lines(labels)[:11]) + "\n")
    results = tmp_path / "r"
    proc = tao(PC, "train", "-r", results, "-k", KEY, f"data_dir={small_data}", "trainer.max_steps=1")
    assert_error(proc, 1, f"{labels}:12: missing", "12 lines", "11")
    _assert_train_failed_cleanly(results)


def test_a_three_character_label_names_file_line_and_word(small_data, tmp_path):
    labels = small_data / "labels_train.txt"
    rows = lines(labels)
    rows[1] = " ".join(rows[1].split()[:2] + ["OUU"] + rows[1].split()[3:])
    labels.write_text("\n".join(rows) + "\n")
    results = tmp_path / "r"
    proc = tao(PC, "train", "-r", results, "-k", KEY, f"data_dir={small_data}", "trainer.max_steps=1")
    assert_error(proc, 1, f"{labels}:2: label 'OUU' (word 3) is not 2 characters")
    _assert_train_failed_cleanly(results)


def test_dev_ratio_out_of_range_is_a_usage_error_that_writes_no_data(punct_data, tmp_path):
    target = tmp_path / "out"
    results = tmp_path / "conv"
    proc = tao(PC, "dataset_convert", "-r", results, f"source_data_dir={punct_data / 'text_train.txt'}",
               f"target_data_dir={target}", "dev_ratio=1.5")
    assert_error(proc, 2, "'dev_ratio=1.5'", "at least 0 and less than 1, got 1.5")
    assert not target.exists() and not results.exists()   # a schema range: refused before any work


def test_an_empty_input_file_says_it_is_empty(punct_trained, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    results = tmp_path / "inf"
    proc = tao(PC, "infer", "-r", results, "-k", KEY, "-m", punct_trained / ARCHIVE, f"input_file={empty}")
    assert_error(proc, 1, f"input file {empty} is empty")
    assert not (results / "infer_results.json").exists()
