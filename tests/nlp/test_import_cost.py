"""The commands that do not train do not import what only training needs (issue 12, section 5).

pytorch_lightning costs 3-5 s of every command that imports it; torch 1-2 s more. So:
dataset_convert imports neither torch nor transformers, and evaluate, infer and export import no
Lightning, for every task, through the shared NLP layer (its subtasks import their heavy modules
inside the functions that use them; Lightning lives in core/module.py and tasks/*/training.py).
Each subtask runs in its own process, through the entrypoint, and reports its ``sys.modules``.
Timings: benchmarks/bench_commands.py. Runtime: about 50 s on 2 cores (15 short runs after the five
dataset_convert, two at a time; 86 s of CPU).
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import KEY, SAMPLE, tao_env
from tiny_models import read_labels, tiny_archive
from tao_launcher.registry import TASKS

WATCHED = ("torch", "transformers", "pytorch_lightning", "lightning_fabric", "lightning")
PROBE = ("import json, sys\n"
         "from tao_launcher.entrypoint import main\n"
         "code = main(sys.argv[1:])\n"
         f"print('MODULES ' + json.dumps([m for m in {WATCHED!r} if m in sys.modules]))\n"
         "sys.exit(code)\n")
TASKS_UNDER_TEST = ("text_classification", "token_classification", "punctuation_and_capitalization",
                    "intent_slot_classification", "question_answering")
LIGHTNING = {"pytorch_lightning", "lightning_fabric", "lightning"}

CONLL = ("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n\n"
         "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\nvisited VBD B-VP O\nBrussels NNP B-NP B-LOC\n\n")
PROSE = ("How are you? I am fine, thank you.\nWe met in Paris last year.\nDid you see it? Yes, twice.\n"
         "The train leaves at noon.\nShe said no, and left.\n")
SQUAD = {"version": "v2.0", "data": [
    {"title": title, "paragraphs": [{"context": context, "qas": [
        {"id": f"{title}-1", "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}]},
        {"id": f"{title}-2", "question": "Who won the cup?", "answers": [], "is_impossible": True}]}]}
    for title, context, question, answer in (
        ("Paris", "We met in Paris last year.", "Where did we meet?", "Paris"),
        ("Noon", "The train leaves at noon.", "When does the train leave?", "noon"))]}


def probe(tmp_path: Path, task: str, subtask: str, *args) -> tuple:
    """Run ``task subtask args`` in a fresh process: (finished process, modules it had imported)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, task, subtask, *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=tao_env(tmp_path / "home", TAO_KEY=KEY))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("MODULES ")]
    assert proc.returncode == 0 and lines, f"{task} {subtask} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc, set(json.loads(lines[-1][len("MODULES "):]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """(task, subtask) -> the modules that subtask imported; dataset_convert first, then the three
    subtasks that read a model, on a tiny model of each task, two processes at a time."""
    root = tmp_path_factory.mktemp("imports")
    (root / "conll").mkdir()
    (root / "conll" / "eng.train").write_text(CONLL)
    (root / "conll" / "eng.testa").write_text(CONLL)
    (root / "prose.txt").write_text(PROSE)
    for split in ("train", "dev"):
        for name, text in (("seq.in", "fly to new york\nfares to boston\n"), ("seq.out", "O O B-to I-to\nO O B-to\n"),
                           ("label", "flight\nairfare\n")):
            (root / "atis" / split).mkdir(parents=True, exist_ok=True)
            (root / "atis" / split / name).write_text(text)
    (root / "squad.json").write_text(json.dumps(SQUAD))
    data = {task: root / task / "data" for task in TASKS_UNDER_TEST}
    sources = {"text_classification": [f"source_data_dir={SAMPLE}"],
               "token_classification": [f"source_data_dir={root / 'conll'}"],
               "punctuation_and_capitalization": [f"source_data_dir={root / 'prose.txt'}"],
               "intent_slot_classification": [f"source_data_dir={root / 'atis'}"],
               "question_answering": [f"source_file={root / 'squad.json'}", "dev_ratio=0.5"]}
    out = {}
    for task in TASKS_UNDER_TEST:
        out[task, "dataset_convert"] = probe(root, task, "dataset_convert", "-r", root / task / "convert",
                                             *sources[task], f"target_data_dir={data[task]}")[1]
    labels = {"text_classification": read_labels(data["text_classification"] / "labels.txt"),
              "token_classification": read_labels(data["token_classification"] / "label_ids.csv"),
              "punctuation_and_capitalization": (read_labels(data["punctuation_and_capitalization"] / "punct_label_ids.csv"),
                                                 read_labels(data["punctuation_and_capitalization"] / "capit_label_ids.csv")),
              "intent_slot_classification": (read_labels(data["intent_slot_classification"] / "dict.intents.csv"),
                                             read_labels(data["intent_slot_classification"] / "dict.slots.csv")),
              "question_answering": None}
    evaluate_data = {"text_classification": [f"test_ds.file_path={data['text_classification'] / 'dev.tsv'}"],
                     "token_classification": [f"data_dir={data['token_classification']}"],
                     "punctuation_and_capitalization": [f"data_dir={data['punctuation_and_capitalization']}"],
                     "intent_slot_classification": [f"data_dir={data['intent_slot_classification']}", "test_ds.prefix=dev"],
                     "question_answering": [f"test_ds.file={data['question_answering'] / 'dev.json'}"]}
    sentences = ['input_batch=["we met in paris", "how are you"]']
    infer_input = {task: sentences for task in TASKS_UNDER_TEST} | {"question_answering": []}   # its default batch
    commands = {}
    for task in TASKS_UNDER_TEST:
        model = tiny_archive(task, root / task / "model.tao", KEY, labels[task])
        commands[task, "evaluate"] = ["-m", model, *evaluate_data[task]]
        commands[task, "infer"] = ["-m", model, *infer_input[task]]
        commands[task, "export"] = ["-m", model, "export_format=ONNX"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(task, subtask): pool.submit(probe, root, task, subtask, "-r", root / task / subtask, *args)
                   for (task, subtask), args in commands.items()}
        out.update({name: future.result()[1] for name, future in futures.items()})
    return out


@pytest.mark.parametrize("task", TASKS_UNDER_TEST)
def test_dataset_convert_imports_neither_torch_nor_transformers(runs, task):
    assert not {"torch", "transformers"} & runs[task, "dataset_convert"]


@pytest.mark.parametrize("subtask", ["evaluate", "infer", "export"])
@pytest.mark.parametrize("task", TASKS_UNDER_TEST)
def test_subtasks_that_read_a_model_import_torch_but_no_lightning(runs, task, subtask):
    modules = runs[task, subtask]
    assert "torch" in modules  # the probe sees what the subtask imported
    assert not LIGHTNING & modules, f"{task} {subtask} imported {sorted(LIGHTNING & modules)}"
    if subtask in ("evaluate", "infer"):  # a BERT model runs on nlp/bert.py: no transformers (2-3 s saved)
        assert "transformers" not in modules, f"{task} {subtask} imported transformers"


@pytest.mark.parametrize("task", list(TASKS))
def test_importing_a_tasks_subtasks_module_imports_no_torch(task):
    """Any task, present or future: its subtasks module is what the entrypoint imports for every subtask."""
    code = (f"import sys, tao_launcher.tasks.{task}.subtasks\n"
            f"print(sorted(m for m in {WATCHED!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
