"""``num_samples`` in every task's data sections: a seeded random draw kept in file order, never the first N
lines of a file sorted by label, and a warning when the draw lacks labels the whole file has (issue 26, item 7;
the one helper is core/textfiles.py ``subset``; every line is still read and checked).

Each task's reader gets the same file: 60 examples sorted by label (20 "zero", then 20 "one", then 20 "two"),
as dataset_convert writes FSDD digit by digit; an example's position is the number in its first word.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, List

import pytest

from conftest import sine_wav
from tao_launcher.registry import TASKS

LABELS = ["zero", "one", "two"]
EACH = 20
SORTED = [LABELS[i // EACH] for i in range(len(LABELS) * EACH)]   # the label of example i
MARKS = {"zero": ",", "one": ".", "two": "?"}                     # punctuation's labels


def position(text: str) -> int:
    return int(re.search(r"w(\d+)", text).group(1))


def write_lines(path: Path, lines: List[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def text_classification(folder: Path) -> Callable:
    from tao_launcher.tasks.text_classification import data

    path = write_lines(folder / "train.tsv", [f"w{i} film\t{LABELS.index(label)}" for i, label in enumerate(SORTED)])
    return lambda n, **seed: [position(s) for s in data.read_examples(path, n, **seed)[0]]


def token_classification(folder: Path) -> Callable:
    from tao_launcher.tasks.token_classification import data

    text = write_lines(folder / "text_train.txt", [f"w{i} went" for i in range(len(SORTED))])
    labels = write_lines(folder / "labels_train.txt", [f"B-{label} O" for label in SORTED])
    return lambda n, **seed: [position(words[0]) for words in data.read_examples(text, labels, n, **seed)[0]]


def punctuation_and_capitalization(folder: Path) -> Callable:
    from tao_launcher.tasks.punctuation_and_capitalization import data

    text = write_lines(folder / "text_train.txt", [f"w{i} went" for i in range(len(SORTED))])
    labels = write_lines(folder / "labels_train.txt", [f"OU {MARKS[label]}O" for label in SORTED])
    return lambda n, **seed: [position(words[0]) for words in data.read_examples(text, labels, n, **seed)[0]]


def intent_slot_classification(folder: Path) -> Callable:
    from tao_launcher.tasks.intent_slot_classification import data

    write_lines(folder / "train.tsv", ["sentence\tlabel"] + [f"w{i} flights\t{LABELS.index(label)}"
                                                             for i, label in enumerate(SORTED)])
    write_lines(folder / "train_slots.tsv", ["0 0"] * len(SORTED))
    return lambda n, **seed: [position(words[0]) for words in
                              data.read_examples(folder, "train", n, LABELS, ["O"], **seed)[0]]


def question_answering(folder: Path) -> Callable:
    """Kinds of question, not classes: the 20 "two" questions are the unanswerable ones."""
    from tao_launcher.tasks.question_answering import data

    context = "Ann lives in Paris."
    qas = [{"id": f"w{i}", "question": "Where?",
            "answers": [] if label == "two" else [{"text": "Paris", "answer_start": 13}]}
           for i, label in enumerate(SORTED)]
    path = folder / "train.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}))
    return lambda n, **seed: [position(q.id) for q in data.read_squad(path, n, **seed).questions]


def speech_to_text(folder: Path) -> Callable:
    """Transcripts "zero", "one", "two": a draw of only "zero" lacks the characters n, t and w."""
    from tao_launcher.tasks.speech_to_text import data

    wav = sine_wav(folder / "tone.wav", seconds=0.2, rate=8000)
    manifest = write_lines(folder / "train_manifest.json", [
        json.dumps({"audio_filepath": f"{wav.name}", "duration": 0.2, "text": label})
        for i, label in enumerate(SORTED)])

    def read(n, **seed):
        ds = SimpleNamespace(manifest_filepath=str(manifest), skip_bad_files=False, num_samples=n,
                             min_duration=0.1, max_duration=16.7)
        return [u.line - 1 for u in data.read_utterances(ds, **seed)]
    return read


READERS: Dict[str, Callable] = {f.__name__: f for f in (
    text_classification, token_classification, punctuation_and_capitalization, intent_slot_classification,
    question_answering, speech_to_text)}


def test_every_task_has_a_reader_here():
    assert sorted(READERS) == sorted(TASKS)


@pytest.mark.parametrize("task", sorted(READERS))
def test_num_samples_draws_a_seeded_subset_in_file_order(task, tmp_path):
    read = READERS[task](tmp_path)
    assert read(-1) == list(range(len(SORTED)))
    drawn = read(30)
    assert len(drawn) == 30 and drawn == sorted(drawn)
    assert {SORTED[i] for i in drawn} == set(LABELS), f"30 of a file sorted by label: {drawn}"  # not the first 30
    assert read(30) == drawn                                       # trainer.seed fixes the draw
    assert read(30, seed=7) != drawn
    assert read(len(SORTED)) == read(10**6) == list(range(len(SORTED)))


@pytest.mark.parametrize("task", sorted(READERS))
def test_a_draw_that_lacks_labels_of_the_file_warns_once(task, tmp_path, caplog):
    read = READERS[task](tmp_path)
    with caplog.at_level("WARNING"):
        assert len(read(1)) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "num_samples=1 draws 1 of the 60" in warnings[0], warnings
    assert str(tmp_path) in warnings[0] and "raise num_samples to include them" in warnings[0]
    assert re.search(r"which lack \d+ of its \d+ ", warnings[0]), warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        read(-1)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
