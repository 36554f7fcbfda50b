"""intent_slot_classification data formats, read in-process: dataset_convert (UNK handling, file:line errors,
nothing half-written), the NeMo reader, slot spans. Runtime: under a second."""

from __future__ import annotations

import logging
import re

import pytest

from tao_launcher.errors import DataError, UsageError
from tao_launcher.tasks.intent_slot_classification import data

TRAIN = {"seq.in": "fly from san jose to denver\nshow fares to new york\nfly to denver\n",
         "seq.out": "O O B-from I-from O B-to\nO O O B-to I-to\nO O B-to\n",
         "label": "flight\nairfare\nflight\n"}
# a dev-only intent (ground) and a dev-only tag (B-day), twice and once
DEV = {"seq.in": "fly to boston monday\ntaxi in denver\ntaxi in boston\n",
       "seq.out": "O O B-to B-day\nO O B-to\nO O B-to\n",
       "label": "flight\nground\nground\n"}


def source(tmp_path, splits=None, files=None):
    src = tmp_path / "src"
    for split, content in (splits or {"train": TRAIN, "dev": DEV}).items():
        (src / split).mkdir(parents=True)
        for name, text in content.items():
            (src / split / name).write_text(text, encoding="utf-8")
    for name, text in (files or {}).items():
        (src / name).write_text(text, encoding="utf-8")
    return src


def lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_convert_writes_nemo_files_with_unk_last(tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="tao.intent_slot_classification"):
        summary = data.convert("atis", source(tmp_path), out)
    assert sorted(p.name for p in out.iterdir()) == [".tao-convert.json", "dev.tsv", "dev_slots.tsv",
                                                     "dict.intents.csv", "dict.slots.csv", "train.tsv", "train_slots.tsv"]
    intents, slots = lines(out / "dict.intents.csv"), lines(out / "dict.slots.csv")
    assert intents == ["airfare", "flight", "UNK"]
    assert slots == ["O", "B-from", "B-to", "I-from", "I-to", "UNK"]
    assert lines(out / "train.tsv") == ["sentence\tlabel", "fly from san jose to denver\t1",
                                        "show fares to new york\t0", "fly to denver\t1"]
    assert lines(out / "train_slots.tsv") == ["0 0 1 3 0 2", "0 0 0 2 4", "0 0 2"]
    # the dev-only intent and tag are kept, as the UNK id, and counted
    assert lines(out / "dev.tsv")[1:] == ["fly to boston monday\t1", "taxi in denver\t2", "taxi in boston\t2"]
    assert lines(out / "dev_slots.tsv") == ["0 0 2 5", "0 0 2", "0 0 2"]
    assert summary["unk_intents_dev"] == 2 and summary["unk_slots_dev"] == 1
    assert summary["unk_intents_train"] == summary["unk_slots_train"] == 0
    assert summary["utterances_train"] == 3 and summary["utterances_dev"] == 3
    assert summary["intents"] == 2 and summary["slots"] == 5
    assert "ground (2)" in caplog.text and "B-day (1)" in caplog.text


def test_label_files_give_the_order_and_their_unk_pad_entries_are_skipped(tmp_path):
    src = source(tmp_path, files={"intent_label.txt": "UNK\nflight\nairfare\n",
                                  "slot_label.txt": "PAD\nUNK\nB-to\nO\nI-to\nB-from\nI-from\n"})
    out = tmp_path / "out"
    data.convert("snips", src, out)
    assert lines(out / "dict.intents.csv") == ["flight", "airfare", "UNK"]
    assert lines(out / "dict.slots.csv") == ["O", "B-to", "I-to", "B-from", "I-from", "UNK"]


def test_reader_round_trips_what_convert_wrote(tmp_path):
    out = tmp_path / "out"
    data.convert("atis", source(tmp_path), out)
    intents, slots = data.read_dict(out / "dict.intents.csv", "intent"), data.read_dict(out / "dict.slots.csv", "slot")
    words, intent_ids, slot_ids = data.read_examples(out, "dev", -1, intents, slots)
    assert words[0] == ["fly", "to", "boston", "monday"]
    assert [intents[i] for i in intent_ids] == ["flight", "UNK", "UNK"]
    assert [slots[i] for i in slot_ids[0]] == ["O", "O", "B-to", "UNK"]
    every = data.read_examples(out, "train", -1, intents, slots)
    drawn = data.read_examples(out, "train", 2, intents, slots)   # two, in file order (tests/test_num_samples.py)
    at = [every[0].index(words) for words in drawn[0]]
    assert len(at) == 2 and at == sorted(at) and drawn[1] == [every[1][i] for i in at]


@pytest.mark.parametrize("split,name,content,where,fragment", [
    ("train", "seq.out", "O O B-from I-from O B-to\nO O O B-to\nO O B-to\n", "train/seq.out:2",
     "4 labels for the 5 words of"),
    ("dev", "seq.in", "fly to boston monday\ntaxi in denver\ntaxi in boston now\n", "dev/seq.out:3",
     "3 labels for the 4 words of"),
    ("train", "label", "flight\nairfare\n", "train/label:3", "has no intent on that line"),
    ("train", "label", "flight\nairfare\nflight\nflight\n", "train/label:4", "holds no utterance"),
    ("train", "label", "flight\nair fare\nflight\n", "train/label:2", "holds a space"),
])
def test_a_source_mismatch_names_file_and_line_and_writes_nothing(tmp_path, split, name, content, where, fragment):
    splits = {"train": dict(TRAIN), "dev": dict(DEV)}
    splits[split][name] = content
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match=re.escape(where) + r": .*" + re.escape(fragment)):
        data.convert("atis", source(tmp_path, splits), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # nothing half-written, nothing of ours removed


def test_a_missing_train_folder_or_source_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="has no train/ folder"):
        data.convert("atis", source(tmp_path, {"dev": DEV}), tmp_path / "out")
    with pytest.raises(UsageError, match="does not exist"):
        data.convert("atis", tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_source_file_names_it(tmp_path):
    splits = {"train": {k: v for k, v in TRAIN.items() if k != "label"}}
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "src" / "train" / "label")) + " does not exist"):
        data.convert("atis", source(tmp_path, splits), tmp_path / "out")


def test_a_second_convert_without_dev_removes_the_stale_dev_files(tmp_path):
    out = tmp_path / "out"
    data.convert("atis", source(tmp_path), out)
    (tmp_path / "src2").mkdir()
    data.convert("atis", source(tmp_path / "src2", {"train": TRAIN}), out)
    assert not (out / "dev.tsv").exists() and not (out / "dev_slots.tsv").exists()


@pytest.fixture
def converted(tmp_path):
    out = tmp_path / "out"
    data.convert("atis", source(tmp_path), out)
    return out, data.read_dict(out / "dict.intents.csv", "intent"), data.read_dict(out / "dict.slots.csv", "slot")


@pytest.mark.parametrize("file,content,where,fragment", [
    ("train_slots.tsv", "0 0 1 3 0 2\n0 0 0 2\n0 0 2\n", "train_slots.tsv:2", "4 slot ids for the 5 words of"),
    ("train_slots.tsv", "0 0 1 3 0 2\n0 0 0 2 4\n", "train_slots.tsv:3", "missing"),
    ("train_slots.tsv", "0 0 1 3 0 2\n0 0 0 2 4\n0 0 9\n", "train_slots.tsv:3", "slot id 9 is out of range"),
    ("train_slots.tsv", "0 0 1 3 0 2\n0 0 0 2 4\n0 0 x\n", "train_slots.tsv:3", "slot id 'x' is not an integer"),
    ("train.tsv", "sentence\tlabel\nfly from san jose to denver\t7\n", "train.tsv:2", "intent id 7 is out of range"),
    ("train.tsv", "sentence\tlabel\nfly from san jose to denver 1\n", "train.tsv:2", "expected 'sentence<TAB>intent id'"),
])
def test_reader_errors_name_file_and_line(converted, file, content, where, fragment):
    out, intents, slots = converted
    (out / file).write_text(content)
    with pytest.raises(DataError, match=re.escape(where) + r": .*" + re.escape(fragment)):
        data.read_examples(out, "train", -1, intents, slots)


def test_reader_names_a_missing_prefix(converted):
    out, intents, slots = converted
    with pytest.raises(DataError, match=r"test\.tsv does not exist: .*the prefix"):
        data.read_examples(out, "test", -1, intents, slots)


def test_slot_spans_follow_the_conlleval_rules():
    words = "show me flights from boston to new york on monday".split()
    tags = ["O", "O", "O", "O", "B-fromloc.city_name", "O", "B-toloc.city_name", "I-toloc.city_name", "O",
            "I-depart_date.day_name"]  # an I- with nothing open starts a slot
    assert [(s["slot"], s["text"]) for s in data.slot_spans(words, tags)] == [
        ("fromloc.city_name", "boston"), ("toloc.city_name", "new york"), ("depart_date.day_name", "monday")]
