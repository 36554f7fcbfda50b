"""token_classification data formats, read in-process: CoNLL dataset_convert, the NeMo two-file reader, infer files."""

from __future__ import annotations

import logging
import random
import re

import pytest

from conftest import dataset
from tao_launcher.core.metrics import extract_spans
from tao_launcher.errors import EXIT_FAILED, EXIT_USAGE, DataError, UsageError
from tao_launcher.tasks.token_classification import data

TRAIN = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

Smith NNP I-NP I-PER
Jones NNP I-NP B-PER
met VBD I-VP O
Acme NNP I-NP I-ORG
Corp NNP I-NP I-ORG
"""  # IOB1, as the original CoNLL-2003 release; no blank line at the end
DEV = "Paris NNP I-NP B-LOC\nsleeps VBZ I-VP O\n\n\n"


def at(path, line: int) -> str:
    """A pattern for a message that starts by naming ``path:line``."""
    return re.escape(f"{path}:{line}:")


def conll(tmp_path, **files: str):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name, text in files.items():
        (src / name.replace("_", ".")).write_text(text, encoding="utf-8")
    return src


def lines(path):
    return path.read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------------------------- dataset_convert

def test_convert_writes_nemo_files_in_iob2_without_docstart(tmp_path, caplog):
    src = conll(tmp_path, eng_train=TRAIN, eng_testa=DEV, eng_testb="Rome B-LOC\n", SOURCE_txt="notes")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="tao.token_classification"):
        counts = data.convert(src, out)
    assert counts == {"text_train.txt": 3, "text_dev.txt": 1, "text_test.txt": 1, "label_ids.csv": 7}
    assert lines(out / "text_train.txt") == ["EU rejects German call .", "Peter Blackburn",
                                            "Smith Jones met Acme Corp"]
    assert lines(out / "labels_train.txt") == ["B-ORG O B-MISC O O", "B-PER I-PER",
                                              "B-PER B-PER O B-ORG I-ORG"]
    assert lines(out / "text_dev.txt") == ["Paris sleeps"] and lines(out / "labels_dev.txt") == ["B-LOC O"]
    assert lines(out / "text_test.txt") == ["Rome"] and lines(out / "labels_test.txt") == ["B-LOC"]
    assert data.read_label_ids(out / "label_ids.csv") == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-ORG", "I-PER"]
    assert sorted(p.name for p in out.iterdir()) == [".tao-convert.json", "label_ids.csv", "labels_dev.txt",
                                                     "labels_test.txt", "labels_train.txt", "text_dev.txt", "text_test.txt",
                                                     "text_train.txt"]
    assert "SOURCE.txt" in caplog.text and "ignored" in caplog.text
    # what convert writes, the training reader reads back
    words, tags = data.read_examples(out / "text_train.txt", out / "labels_train.txt",
                                     label_ids=data.read_label_ids(out / "label_ids.csv"))
    assert words[1] == ["Peter", "Blackburn"] and tags[2][1] == "B-PER"


@pytest.mark.parametrize("name, split", [
    ("eng.train", "train"), ("train.txt", "train"), ("eng.testa", "dev"), ("dev.conll", "dev"),
    ("valid.txt", "dev"), ("validation.txt", "dev"), ("eng.testb", "test"), ("test.txt", "test"),
    ("EN.TestA", "dev"), ("README", None), ("SOURCE.txt", None),
])
def test_split_comes_from_the_file_name_testa_before_test(name, split):
    assert data.split_of(name) == split


def test_split_files_are_concatenated_and_a_second_run_over_the_same_folder_skips_its_output(tmp_path):
    src = conll(tmp_path, a_train="a O\n", b_train="b B-X\n", x_dev="c O\n")
    assert data.convert(src, src)["text_train.txt"] == 2
    assert lines(src / "text_train.txt") == ["a", "b"]
    assert data.convert(src, src) == {"text_train.txt": 2, "text_dev.txt": 1, "label_ids.csv": 2}


def test_a_single_source_file_without_a_split_name_is_the_train_split(tmp_path):
    file = tmp_path / "ner.conll"
    file.write_text("Jim B-PER\nran O\n\nAcme I-ORG\n")
    assert data.convert(file, tmp_path / "out") == {"text_train.txt": 2, "label_ids.csv": 3}
    assert lines(tmp_path / "out" / "labels_train.txt") == ["B-PER O", "B-ORG"]


def test_windows_line_ends_tabs_and_a_utf8_bom_are_read(tmp_path):
    src = conll(tmp_path, train="\ufeffZürich\tB-LOC\r\nist\tO\r\n\r\n")
    data.convert(src, tmp_path / "out")
    assert lines(tmp_path / "out" / "text_train.txt") == ["Zürich ist"]


def test_no_train_file_is_a_usage_error_saying_what_was_looked_for(tmp_path):
    src = conll(tmp_path, eng_testa=DEV, notes_md="x")
    with pytest.raises(UsageError,
                       match=r"no training file in .*'train' in its name.*found: eng.testa, notes.md") as err:
        data.convert(src, tmp_path / "out")
    assert err.value.exit_code == EXIT_USAGE
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="does not exist"):
        data.convert(tmp_path / "nowhere", tmp_path / "out")


@pytest.mark.parametrize("bad, line, message", [
    ("Lonely\n", 2, "expected 'word ... tag' columns"),
    ("word NNP B-\n", 2, "'B-' is not an IOB tag"),
    ("word NNP\n", 2, "'NNP' is not an IOB tag"),
    ("\u200b O\n", 2, "has no visible character"),
])
def test_a_bad_source_line_names_file_and_line_and_writes_nothing(tmp_path, bad, line, message):
    # the train file converts first: its output is staged, never left in the target
    src = conll(tmp_path, eng_train=TRAIN, eng_testa="Paris B-LOC\n" + bad)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=at(src / "eng.testa", line) + ".*" + re.escape(message)) as err:
        data.convert(src, out)
    assert err.value.exit_code == EXIT_FAILED
    assert not out.exists()   # not even the folder it made


def test_a_non_utf8_source_names_the_line_and_writes_nothing(tmp_path):
    src = conll(tmp_path, eng_train=TRAIN)
    (src / "eng.testa").write_bytes(b"Paris B-LOC\n\nK\xf6ln B-LOC\n")
    with pytest.raises(DataError, match=at(src / "eng.testa", 3) + ".*not UTF-8.*save the file as UTF-8"):
        data.convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_source_with_no_sentences_is_a_data_error(tmp_path):
    src = conll(tmp_path, eng_train="-DOCSTART- -X- O O\n\n")
    with pytest.raises(DataError, match=re.escape(f"{src / 'eng.train'} holds no sentences")):
        data.convert(src, tmp_path / "out")


def test_to_iob2_keeps_every_entity_and_writes_valid_iob2():
    assert data.to_iob2(["I-PER", "I-PER", "I-LOC", "O", "I-LOC", "B-LOC", "I-LOC"]) == \
        ["B-PER", "I-PER", "B-LOC", "O", "B-LOC", "B-LOC", "I-LOC"]
    assert data.to_iob2(["S-PER", "B-ORG", "E-ORG", "I-ORG"]) == ["B-PER", "B-ORG", "I-ORG", "B-ORG"]
    rng = random.Random(0)
    pool = ["O", "B-A", "I-A", "B-B", "I-B", "E-A", "S-B"]
    for _ in range(2000):
        tags = [rng.choice(pool) for _ in range(rng.randint(0, 8))]
        iob2 = data.to_iob2(tags)
        assert extract_spans(iob2) == extract_spans(tags), tags
        for prev, tag in zip(["O"] + iob2, iob2):  # every I-X follows a B-X or an I-X
            assert not tag.startswith("I-") or prev[2:] == tag[2:] and prev != "O", iob2


# ----------------------------------------------------------------------------- label_ids.csv

def test_label_ids_round_trip_and_errors(tmp_path):
    path = tmp_path / "label_ids.csv"
    data.write_label_ids(path, ["O", "B-PER", "I-PER"])
    assert path.read_text() == "O\nB-PER\nI-PER\n"
    assert data.read_label_ids(path) == ["O", "B-PER", "I-PER"]
    path.write_text("O\nB-PER\nI-PER\n\n\n")  # blank lines at the end are fine
    assert data.read_label_ids(path) == ["O", "B-PER", "I-PER"]
    with pytest.raises(ValueError):
        data.write_label_ids(path, ["O", "O"])

    path.write_text("O\nB-PER\nI-PER\nB-PER\n")
    with pytest.raises(DataError, match=at(path, 4) + " label 'B-PER' repeats line 2; delete one of them"):
        data.read_label_ids(path)
    path.write_text("O\n\nB-PER\n")
    with pytest.raises(DataError, match=at(path, 2) + " blank line before the label on line 3.*delete the blank line"):
        data.read_label_ids(path)
    path.write_text("\n \n")
    with pytest.raises(DataError, match=re.escape(f"{path} is empty: write one label a line")):
        data.read_label_ids(path)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'none.csv'} does not exist")):
        data.read_label_ids(tmp_path / "none.csv")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path} is a folder, not a file")) as err:
        data.read_label_ids(tmp_path)
    assert err.value.exit_code == EXIT_FAILED


# ----------------------------------------------------------------------------- the training files

def pair(tmp_path, text: str, labels: str):
    t, lab = tmp_path / "text_train.txt", tmp_path / "labels_train.txt"
    t.write_text(text, encoding="utf-8")
    lab.write_text(labels, encoding="utf-8")
    return t, lab


def test_read_examples_skips_lines_empty_in_both_and_keeps_num_samples(tmp_path):
    t, lab = pair(tmp_path, "Jim  bought shares\n\nAcme Corp\nfine\n\n", "B-PER O O\n\nB-ORG I-ORG\nO\n")
    assert data.read_examples(t, lab) == ([["Jim", "bought", "shares"], ["Acme", "Corp"], ["fine"]],
                                          [["B-PER", "O", "O"], ["B-ORG", "I-ORG"], ["O"]])
    drawn = data.read_examples(t, lab, num_samples=2)[0]   # two of them, in file order (tests/test_num_samples.py)
    assert len(drawn) == 2 and drawn == [s for s in [["Jim", "bought", "shares"], ["Acme", "Corp"], ["fine"]]
                                         if s in drawn]
    assert data.read_examples(t, lab, label_ids=["O", "B-PER", "B-ORG", "I-ORG"])[1][1] == ["B-ORG", "I-ORG"]


def test_read_examples_errors_name_file_and_line(tmp_path):
    t, lab = pair(tmp_path, "a b\nc d\n", "O O\nO\n")
    with pytest.raises(DataError, match=re.escape(f"{lab}:2: 1 labels for the 2 words of {t}:2; give every word")) as err:
        data.read_examples(t, lab)
    assert err.value.exit_code == EXIT_FAILED

    t, lab = pair(tmp_path, "a b\n\nc\n", "O O\nO\nO\n")  # a line empty in the text file only
    with pytest.raises(DataError, match=re.escape(f"{lab}:2: 1 labels for the 0 words of {t}:2")):
        data.read_examples(t, lab)

    t, lab = pair(tmp_path, "a\nb\nc\n", "O\nO\n")
    with pytest.raises(DataError, match=re.escape(f"{lab}:3: missing: {t} has 3 lines but {lab} has 2")):
        data.read_examples(t, lab)

    t, lab = pair(tmp_path, "Jim runs\nAcme rocks\n", "B-PER O\nB-ORG O\n")
    with pytest.raises(DataError, match=at(lab, 2) + re.escape(" tag 'B-ORG' is not in label_ids.csv (2 labels); "
                                                               "add it to label_ids.csv or fix the line")):
        data.read_examples(t, lab, label_ids=["O", "B-PER"])

    lab.write_bytes(b"B-PER O\nB-ORG \xff\n")
    with pytest.raises(DataError, match=at(lab, 2) + " not UTF-8 text.*save the file as UTF-8"):
        data.read_examples(t, lab)

    t, lab = pair(tmp_path, "\n \n", "\n\n")
    with pytest.raises(DataError, match=re.escape(f"{t} holds no sentences")):
        data.read_examples(t, lab)


def test_read_examples_says_whether_a_path_is_a_folder_or_missing(tmp_path):
    t, lab = pair(tmp_path, "a\n", "O\n")
    with pytest.raises(DataError, match=re.escape(f"text file {tmp_path} is a folder, not a file")):
        data.read_examples(tmp_path, lab)
    with pytest.raises(DataError, match=re.escape(f"labels file {tmp_path / 'x.txt'} does not exist")):
        data.read_examples(t, tmp_path / "x.txt")


# ----------------------------------------------------------------------------- infer files

def test_read_sentences_and_its_errors(tmp_path):
    file = tmp_path / "in.txt"
    file.write_text("Jim bought shares\n\n  Acme rose  \n")
    assert data.read_sentences(file) == ["Jim bought shares", "Acme rose"]
    file.write_text("\n  \n")
    with pytest.raises(DataError, match=re.escape(f"input file {file} is empty")) as err:
        data.read_sentences(file)
    assert "set input_file" not in str(err.value)
    with pytest.raises(DataError, match=re.escape(f"input file {tmp_path} is a folder, not a file")):
        data.read_sentences(tmp_path)
    with pytest.raises(DataError, match=re.escape(f"input file {tmp_path / 'no.txt'} does not exist")):
        data.read_sentences(tmp_path / "no.txt")
    file.write_bytes(b"ok\nbad \xc3\n")
    with pytest.raises(DataError, match=at(file, 2) + " not UTF-8"):
        data.read_sentences(file)


def test_tagged_text_is_nemo_infer_output():
    words = "Jim bought 300 shares of Acme Corp.".split()
    tags = ["B-PER", "O", "O", "O", "O", "B-ORG", "I-ORG"]
    assert data.tagged_text(words, tags) == "Jim[B-PER] bought 300 shares of Acme[B-ORG] Corp.[I-ORG]"
    with pytest.raises(ValueError):
        data.tagged_text(words, tags[:-1])


# ----------------------------------------------------------------------------- the real CoNLL-2003 files

def test_conll2003_converts_with_its_counts(tmp_path):
    src = dataset("conll2003")
    counts = data.convert(src, tmp_path / "out")
    assert counts == {"text_train.txt": 14041, "text_dev.txt": 3250, "label_ids.csv": 9}
    labels = data.read_label_ids(tmp_path / "out" / "label_ids.csv")
    assert labels == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    words, tags = data.read_examples(tmp_path / "out" / "text_dev.txt", tmp_path / "out" / "labels_dev.txt",
                                     label_ids=labels)
    assert len(words) == 3250 and sum(map(len, words)) == 51362
    # the files are IOB2 already: the tags come through unchanged
    source = [line.split()[-1] for line in (src / "eng.testa").read_text().splitlines() if line.strip()]
    assert [tag for sentence in tags for tag in sentence] == source
