"""docs/adding_a_task.md as a contributor uses it: the example task of tests/example_task (a spec, a reader, a head,
a loss and a metric, and its predict step) runs train -> evaluate -> infer -> export -> infer_onnx on the shared core."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KEY, tao_env

EXAMPLE = Path(__file__).parent / "example_task"
TOPICS = {
    "weather": ["it is raining hard today", "the sun is shining all day", "a cold wind blows from the north",
                "snow fell on the hills overnight"],
    "food": ["the soup tastes of garlic", "she baked fresh bread this morning", "we ate rice with beans",
             "the apples in the bowl are ripe"],
    "travel": ["the train to paris leaves at noon", "our flight was delayed by an hour",
               "they drove along the coast road", "the ferry crossed the bay slowly"],
}


def write_pairs(path: Path, count: int, seed: int) -> None:
    """A pair says the same thing (1) when both sentences are one sentence, the second with a word dropped."""
    rng = random.Random(seed)
    sentences = [s for group in TOPICS.values() for s in group]
    lines = []
    for i in range(count):
        first = rng.choice(sentences)
        if i % 2:
            words = first.split()
            del words[rng.randrange(len(words))]
            lines.append(f"{first}\t{' '.join(words)}\t1")
        else:
            lines.append(f"{first}\t{rng.choice([s for s in sentences if s != first])}\t0")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(*args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(EXAMPLE / "run_entrypoint.py"), *map(str, args)],
                          env=tao_env(TAO_KEY=KEY), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args[:2]} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def status(folder: Path) -> dict:
    return json.loads((folder / "status.json").read_text())


def test_the_example_task_holds_only_what_differs():
    files = {p.name: len(p.read_text().splitlines()) for p in (EXAMPLE / "sentence_pair").glob("*.py")}
    assert set(files) == {"__init__.py", "spec.py", "data.py", "model.py", "training.py", "subtasks.py"}
    assert sum(files.values()) < 250, files


def test_a_new_task_runs_the_whole_workflow_on_the_shared_core(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_pairs(data / "train.tsv", 96, seed=1)
    write_pairs(data / "dev.tsv", 24, seed=2)
    train = tmp_path / "train"
    run("sentence_pair", "train", "-r", train, f"training_ds.file_path={data / 'train.tsv'}",
        f"validation_ds.file_path={data / 'dev.tsv'}", "trainer.max_epochs=2", "optim.lr=1e-4")
    model = train / "checkpoints" / "trained-model.tao"
    assert status(train)["state"] == "finished" and model.is_file()
    assert 0.0 <= status(train)["metrics"]["val_acc"] <= 1.0

    evaluate = tmp_path / "evaluate"
    proc = run("sentence_pair", "evaluate", "-r", evaluate, "-m", model, f"test_ds.file_path={data / 'dev.tsv'}")
    report = json.loads((evaluate / "evaluation_report.json").read_text())
    assert report["pairs"] == 24 and status(evaluate)["metrics"]["test_acc"] == report["accuracy"]
    assert f"accuracy {report['accuracy']:.4f}" in proc.stdout

    pairs = data / "pairs.tsv"
    pairs.write_text("it is raining hard today\tit is raining today\nthe soup tastes of garlic\tour flight was late\n")
    run("sentence_pair", "infer", "-r", tmp_path / "infer", "-m", model, f"input_file={pairs}")
    export = tmp_path / "export"
    run("sentence_pair", "export", "-r", export, "-m", model, "export_format=ONNX")
    run("sentence_pair", "infer_onnx", "-r", tmp_path / "infer_onnx", "-m", export / "exported-model.eonnx",
        f"input_file={pairs}")
    torch_rows = json.loads((tmp_path / "infer" / "infer_results.json").read_text())
    onnx_rows = json.loads((tmp_path / "infer_onnx" / "infer_results.json").read_text())
    assert [r["first"] for r in torch_rows] == ["it is raining hard today", "the soup tastes of garlic"]
    assert [r["second"] for r in onnx_rows] == [r["second"] for r in torch_rows]
    for torch_row, onnx_row in zip(torch_rows, onnx_rows):
        assert onnx_row["same"] == pytest.approx(torch_row["same"], abs=1e-4)
