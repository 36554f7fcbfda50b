"""question_answering end to end through the real `tao` command, on a slice of the real SQuAD v2.0 sample.

One short train per session (the 208 questions of the sample's first article, windows of 128 sub-tokens);
the subtasks that only read its archive run two at a time. About 1 min 40 s on 2 cores (measured under the CPU lock).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import KEY, assert_error, assert_ok, concurrently, dataset, status, tao
from tao_launcher.nlp.squad_scoring import squad_scores

QA = "question_answering"
ARCHIVE = Path("checkpoints") / "trained-model.tao"
SAMPLE = "squad_v2/squad_v2_sample_12articles.json"
DEV_PARAGRAPHS = 8  # of the sample's last article: 79 questions
TRAIN = ["model.dataset.max_seq_length=128", "model.dataset.doc_stride=64", "trainer.max_epochs=1",
         "training_ds.batch_size=16", "optim.lr=2e-4", "trainer.enable_progress_bar=false"]
# 208 questions teach the model when there is no answer, not yet where answers are (measured: NoAns F1 92-100,
# HasAns F1 0-1 after 1-2 epochs); an untrained head answers every question, scoring about 0 on NoAns
MIN_NOANS_F1 = 80.0


# ----------------------------------------------------------------------------- session fixtures

@pytest.fixture(scope="session")
def qa_data(tmp_path_factory) -> Path:
    """train.json (the first article) and dev.json (the first paragraphs of the last one), from the sample."""
    sample = json.loads(dataset(SAMPLE).read_text())
    root = tmp_path_factory.mktemp("qa-data")
    last = dict(sample["data"][-1], paragraphs=sample["data"][-1]["paragraphs"][:DEV_PARAGRAPHS])
    for name, articles in (("train.json", sample["data"][:1]), ("dev.json", [last])):
        (root / name).write_text(json.dumps({"version": sample["version"], "data": articles}))
    return root


def gold(path: Path) -> dict:
    return {q["id"]: [a["text"] for a in q["answers"]] for a in json.loads(path.read_text())["data"]
            for p in a["paragraphs"] for q in p["qas"]}


@pytest.fixture(scope="session")
def qa_trained(qa_data, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("qa-train") / "train"
    tao(QA, "train", "-r", results, "-k", KEY, f"training_ds.file={qa_data / 'train.json'}",
        f"validation_ds.file={qa_data / 'dev.json'}", *TRAIN, check=True)
    return results


@pytest.fixture(scope="session")
def qa_runs(qa_trained, qa_data, tmp_path_factory) -> dict:
    """evaluate, infer, both exports, then infer_onnx of each export and a finetune: name -> (process, folder)."""
    root = tmp_path_factory.mktemp("qa-runs")
    model = qa_trained / ARCHIVE
    dev = qa_data / "dev.json"
    first = {
        "evaluate": [QA, "evaluate", "-r", root / "evaluate", "-k", KEY, "-m", model, f"test_ds.file={dev}"],
        "infer": [QA, "infer", "-r", root / "infer", "-k", KEY, "-m", model, f"input_file={dev}"],
        "ONNX": [QA, "export", "-r", root / "ONNX", "-k", KEY, "-m", model, "export_format=ONNX"],
        "RIVA": [QA, "export", "-r", root / "RIVA", "-k", KEY, "-m", model, "export_format=RIVA"],
    }
    done = concurrently(**first)
    second = {f"infer_onnx-{fmt}": [QA, "infer_onnx", "-r", root / f"infer_onnx-{fmt}", "-k", KEY, "-m",
                                    root / fmt / f"exported-model.{fmt.lower().replace('onnx', 'eonnx')}",
                                    f"input_file={dev}"]
              for fmt in ("ONNX", "RIVA") if done[fmt].returncode == 0}
    second["finetune"] = [QA, "finetune", "-r", root / "finetune", "-k", KEY, "-m", model,
                          f"finetuning_ds.file={qa_data / 'train.json'}", "finetuning_ds.num_samples=40",
                          f"validation_ds.file={dev}", "validation_ds.num_samples=20",
                          "trainer.enable_progress_bar=false"]
    done.update(concurrently(**second))
    return {name: (proc, root / name) for name, proc in done.items()}


# ----------------------------------------------------------------------------- train, finetune

def test_train_learns_when_there_is_no_answer(qa_trained):
    state = status(qa_trained)
    metrics = state["metrics"]
    assert state["state"] == "finished" and (qa_trained / ARCHIVE).is_file()
    assert metrics["train_questions"] == 208 and metrics["train_windows"] > 208  # long contexts: several windows
    assert 0 <= metrics["val_exact_match"] <= metrics["val_f1"] <= 100
    # trained: it has learned when there is no answer (an untrained head answers everything: NoAns F1 near 0)
    assert metrics["val_NoAns_f1"] >= MIN_NOANS_F1, metrics


def test_finetune_continues_from_the_model(qa_runs):
    proc, folder = qa_runs["finetune"]
    assert_ok(proc)
    metrics = status(folder)["metrics"]
    assert metrics["train_questions"] == 40 and "val_f1" in metrics and (folder / ARCHIVE).is_file()


# ----------------------------------------------------------------------------- evaluate

def test_evaluate_scores_and_writes_predictions(qa_runs, qa_data):
    proc, folder = qa_runs["evaluate"]
    assert_ok(proc)
    assert "HasAns" in proc.stdout and "NoAns" in proc.stdout
    metrics = status(folder)["metrics"]
    expected = gold(qa_data / "dev.json")
    predictions = json.loads((folder / "predictions.json").read_text())
    assert set(predictions) == set(expected)
    scores = squad_scores(expected, predictions)
    assert metrics["test_exact_match"] == pytest.approx(scores["exact"])
    assert metrics["test_f1"] == pytest.approx(scores["f1"]) and 0 <= metrics["test_f1"] <= 100
    report = json.loads((folder / "evaluation_report.json").read_text())
    assert report["HasAns_total"] == sum(1 for g in expected.values() if g)
    assert report["NoAns_total"] == sum(1 for g in expected.values() if not g)
    nbest = json.loads((folder / "nbest_predictions.json").read_text())
    null_odds = json.loads((folder / "null_odds.json").read_text())
    for qid, answer in predictions.items():
        assert 1 <= len(nbest[qid]) <= 21 and sum(c["probability"] for c in nbest[qid]) == pytest.approx(1.0)
        assert (answer == "") == (null_odds[qid] > 0.0)  # the null answer wins by the threshold 0.0
        if answer:
            assert answer in {c["text"] for c in nbest[qid]}


# ----------------------------------------------------------------------------- infer, export, infer_onnx

def test_infer_prints_an_answer_or_no_answer_with_a_score(qa_runs, qa_data):
    proc, folder = qa_runs["infer"]
    assert_ok(proc)
    rows = json.loads((folder / "infer_results.json").read_text())
    assert len(rows) == len(gold(qa_data / "dev.json"))
    printed = [line for line in proc.stdout.splitlines() if line.count("\t") == 2]
    assert len(printed) == len(rows)
    for row, line in zip(rows, printed):
        question, answer, score = line.split("\t")
        assert question == row["question"] and answer == (row["answer"] or "no answer")
        assert 0.0 < float(score) <= 1.0


def test_infer_onnx_gives_the_answers_of_infer(qa_runs):
    infer = qa_runs["infer"][1]
    answers = json.loads((infer / "predictions.json").read_text())
    null_odds = json.loads((infer / "null_odds.json").read_text())
    torch_nbest = json.loads((infer / "nbest_predictions.json").read_text())
    for fmt in ("ONNX", "RIVA"):
        proc, folder = qa_runs[f"infer_onnx-{fmt}"]
        assert_ok(proc)
        onnx_answers = json.loads((folder / "predictions.json").read_text())
        onnx_nbest = json.loads((folder / "nbest_predictions.json").read_text())
        assert set(onnx_answers) == set(answers)
        # the same answers, but where the null answer and the best span tie to float precision
        differ = [q for q in answers if onnx_answers[q] != answers[q] and abs(null_odds[q]) > 1e-3]
        assert not differ, [(q, answers[q], onnx_answers[q]) for q in differ]
        for qid, candidates in torch_nbest.items():
            assert [c["probability"] for c in onnx_nbest[qid]] == pytest.approx(
                [c["probability"] for c in candidates], abs=1e-3)
            assert onnx_nbest[qid][0]["text"] == candidates[0]["text"] or \
                candidates[0]["probability"] - candidates[1]["probability"] < 1e-3


def test_infer_takes_question_and_context_pairs(qa_trained, tmp_path):
    items = [{"question": "Who led the Vikings?", "context": "Rollo was a Viking leader."},
             {"question": "Where is Normandy?", "context": "Normandy is in France."}]
    proc = tao(QA, "infer", "-r", tmp_path / "infer", "-k", KEY, "-m", qa_trained / ARCHIVE,
               f"input_batch={json.dumps(items)}")
    assert_ok(proc)
    rows = json.loads((tmp_path / "infer" / "infer_results.json").read_text())
    assert [r["id"] for r in rows] == ["1", "2"] and [r["question"] for r in rows] == [i["question"] for i in items]
    for row, item in zip(rows, items):
        assert row["answer"] in item["context"] and row["no_answer"] == (row["answer"] == "")


# ----------------------------------------------------------------------------- dataset_convert, bad input

def test_dataset_convert_checks_and_splits_by_article(tmp_path):
    source = dataset(SAMPLE)
    sample = json.loads(source.read_text())
    questions = [q for a in sample["data"] for p in a["paragraphs"] for q in p["qas"]]
    proc = tao(QA, "dataset_convert", "-r", tmp_path / "convert", f"source_file={source}",
               f"target_data_dir={tmp_path / 'split'}", "dev_ratio=0.17")
    assert_ok(proc)
    metrics = status(tmp_path / "convert")["metrics"]
    assert metrics["articles"] == len(sample["data"]) and metrics["questions"] == len(questions)
    assert metrics["unanswerable"] == sum(1 for q in questions if not q["answers"])
    train, dev = (json.loads((tmp_path / "split" / n).read_text()) for n in ("train.json", "dev.json"))
    assert len(dev["data"]) == round(0.17 * len(sample["data"]))
    assert sorted(a["title"] for a in train["data"] + dev["data"]) == sorted(a["title"] for a in sample["data"])
    assert metrics["dev_questions"] == sum(len(p["qas"]) for a in dev["data"] for p in a["paragraphs"])


def test_bad_training_files_fail_with_one_sentence_before_any_work(qa_data, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [\n  {"title": "x", "paragraphs": [}\n]}')
    sample = json.loads((qa_data / "train.json").read_text())
    sample["data"][0]["paragraphs"][1]["qas"][2]["answers"][0]["answer_start"] = 10_000
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(sample))
    qid = sample["data"][0]["paragraphs"][1]["qas"][2]["id"]
    for file, fragments in ((broken, [f"{broken}:2:33: not valid JSON"]),
                            (outside, [str(outside), "data[0].paragraphs[1].qas[2].answers[0]", qid,
                                       "is outside its context"])):
        results = tmp_path / f"train-{file.stem}"
        proc = tao(QA, "train", "-r", results, "-k", KEY, f"training_ds.file={file}",
                   f"validation_ds.file={qa_data / 'dev.json'}")
        assert_error(proc, 1, *fragments)
        assert status(results)["state"] == "failed" and not (results / ARCHIVE).exists()
        assert "encoder all-minilm" not in proc.stdout + proc.stderr  # failed before loading the model


def test_hf_export_is_a_stock_question_answering_folder(qa_trained, tmp_path):
    """export_format=HF writes BertForQuestionAnswering (tao's start/end layer is its qa_outputs): it loads
    with AutoModelForQuestionAnswering and no custom code, in a process of its own, and its best span
    on a question is the span tao's own network picks (the export checked the logits themselves)."""
    import subprocess
    import sys

    proc = tao(QA, "export", "-r", tmp_path / "export", "-k", KEY, "-m", qa_trained / ARCHIVE, "export_format=HF")
    assert_ok(proc)
    folder = tmp_path / "export" / "exported-model-hf"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"] and not (folder / "modeling_tao.py").exists()
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForQuestionAnswering, AutoTokenizer\n"
        "m = AutoModelForQuestionAnswering.from_pretrained(sys.argv[1]).eval()\n"
        "t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "x = t('Who led the Vikings?', 'Rollo was a Viking leader.', return_tensors='pt')\n"
        "with torch.inference_mode():\n"
        "    o = m(**x)\n"
        "print(o.start_logits.shape[-1] == x['input_ids'].shape[-1], bool(torch.isfinite(o.end_logits).all()))\n")
    out = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
