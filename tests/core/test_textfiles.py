"""core.textfiles: the one reader of users' text files; every error names FILE:LINE (or the file) and a fix."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tao_launcher.core import textfiles
from tao_launcher.errors import EXIT_FAILED, DataError


def write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_read_lines_drops_bom_and_line_ends_and_counts_from_one(tmp_path):
    path = write(tmp_path / "a.txt", b"\xef\xbb\xbfone\r\ntwo\n\nthree")
    assert list(textfiles.read_lines(path)) == [(1, "one"), (2, "two"), (3, ""), (4, "three")]


def test_read_lines_bad_utf8_names_file_line_byte_and_column(tmp_path):
    path = write(tmp_path / "a.txt", b"ok\nab\xff\n")
    lines = textfiles.read_lines(path)
    assert next(lines) == (1, "ok")
    with pytest.raises(DataError, match=re.escape(f"{path}:2: not UTF-8 text (byte 0xff at column 3); "
                                                  f"save the file as UTF-8 text")) as err:
        next(lines)
    assert err.value.exit_code == EXIT_FAILED


def test_check_file_tells_a_folder_from_a_missing_file(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"input file {tmp_path} is a folder, not a file: fix it")):
        textfiles.check_file(tmp_path, "input file", "fix it")
    with pytest.raises(DataError, match=re.escape(f"input file {tmp_path / 'no.txt'} does not exist: fix it")):
        textfiles.check_file(tmp_path / "no.txt", "input file", "fix it")
    textfiles.check_file(write(tmp_path / "yes.txt", ""), "input file", "fix it")


def test_read_label_list_rules_and_the_task_check(tmp_path):
    path = write(tmp_path / "ids.csv", " O \nB-X\n\n\n")
    assert textfiles.read_label_list(path, fix="f") == ["O", "B-X"]  # blank lines at the end are fine
    for content, message in [("O\n\nB-X\n", ":2: blank line before the label on line 3"),
                             ("\nO\n", ":1: blank line before the label on line 2"),
                             ("O\nB-X\nB-X\n", ":3: label 'B-X' repeats line 2; delete one of them")]:
        write(path, content)
        with pytest.raises(DataError, match=re.escape(f"{path}{message}")):
            textfiles.read_label_list(path, fix="f")
    write(path, "\n \n")
    with pytest.raises(DataError, match=re.escape(f"label ids file {path} is empty: one a line, please")):
        textfiles.read_label_list(path, fix="f", empty_fix="one a line, please")
    with pytest.raises(DataError, match=re.escape(f"label ids file {tmp_path} is a folder, not a file: f")):
        textfiles.read_label_list(tmp_path, fix="f")

    seen = []

    def check(number, label):
        seen.append((number, label))
        if label == "bad":
            raise DataError(f"{path}:{number}: bad label")

    write(path, "O\nbad\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2: bad label")):
        textfiles.read_label_list(path, fix="f", check=check)
    assert seen == [(1, "O"), (2, "bad")]


def pair(tmp_path, text, labels):
    return write(tmp_path / "text.txt", text), write(tmp_path / "labels.txt", labels)


def test_read_parallel_yields_numbered_lines_skipping_blank_ones(tmp_path):
    t, lab = pair(tmp_path, "a  b\n\nc\nd\n\n\n", "X Y\n\nZ\nW\n")  # trailing blanks in one file only are fine
    assert list(textfiles.read_parallel(t, lab)) == [(1, ["a", "b"], ["X", "Y"]), (3, ["c"], ["Z"]),
                                                     (4, ["d"], ["W"])]


@pytest.mark.parametrize("text, labels, where, message", [
    ("a b\nc d\n", "X Y\nZ\n", "labels.txt:2", "1 labels for the 2 words of {t}:2; give every word exactly one label"),
    ("a\nb\nc\n", "X\nY\n", "labels.txt:3", "missing: {t} has 3 lines but {lab} has 2; line N of the labels file"),
    ("a\n", "X\n\nY\n\n", "text.txt:3", "missing: {t} has 1 lines but {lab} has 3"),
])
def test_read_parallel_mismatch_names_both_files_and_the_line(tmp_path, text, labels, where, message):
    t, lab = pair(tmp_path, text, labels)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / where}: {message.format(t=t, lab=lab)}")):
        list(textfiles.read_parallel(t, lab))


def test_read_parallel_missing_files_and_no_sentences(tmp_path):
    t, lab = pair(tmp_path, "\n \n", "\n")
    with pytest.raises(DataError, match=re.escape(f"text file {t} holds no sentences")):
        list(textfiles.read_parallel(t, lab))
    with pytest.raises(DataError, match=re.escape(f"labels file {tmp_path} is a folder, not a file")):
        list(textfiles.read_parallel(t, tmp_path))
    with pytest.raises(DataError, match=re.escape(f"text file {tmp_path / 'no.txt'} does not exist")):
        list(textfiles.read_parallel(tmp_path / "no.txt", lab))


def test_no_torch_import():
    code = "import sys, tao_launcher.core.textfiles; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_read_input_lines_strips_and_skips_blank_lines(tmp_path):
    path = write(tmp_path / "in.txt", "  one \n\n two\n")
    assert textfiles.read_input_lines(path, fix="f", empty_fix="e") == ["one", "two"]
    write(path, "\n \n")
    with pytest.raises(DataError, match=re.escape(f"input file {path} is empty: e")):
        textfiles.read_input_lines(path, fix="f", empty_fix="e")


# ----------------------------------------------------------------------------- num_samples: textfiles.subset

def test_subset_draws_a_seeded_sample_in_file_order_not_the_first_n():
    items = list(range(100))
    drawn = textfiles.subset(items, 10, source="f")
    assert len(drawn) == 10 and drawn == sorted(drawn) and drawn != items[:10]
    assert textfiles.subset(items, 10, source="f") == drawn                  # the same seed, the same draw
    assert textfiles.subset(items, 10, source="f", seed=7) != drawn          # another trainer.seed, another one
    assert textfiles.subset(items, -1, source="f") == items == textfiles.subset(items, 100, source="f")
    assert textfiles.subset(items, 500, source="f") == items


def test_subset_warns_once_naming_the_labels_the_draw_lacks(caplog):
    items = [("a", "zero")] * 40 + [("b", "one"), ("c", "two")]   # sorted by label, as dataset_convert writes FSDD
    with caplog.at_level("WARNING", logger="tao.data"):
        drawn = textfiles.subset(items, 1, source="train.tsv", labels=lambda item: [item[1]], what="classes",
                                 unit="sentences")
    assert len(drawn) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "tao.data"]
    missing = [label for label in ("zero", "one", "two") if label != drawn[0][1]]
    assert warnings == [f"num_samples=1 draws 1 of the 42 sentences of train.tsv, which lack 2 of its 3 classes "
                        f"({' '.join(missing)}): raise num_samples to include them"]
    caplog.clear()
    balanced = [("x", label) for label in ("zero", "one", "two")] * 20
    with caplog.at_level("WARNING", logger="tao.data"):
        textfiles.subset(balanced, 30, source="train.tsv", labels=lambda item: [item[1]])   # has every label
        textfiles.subset(items, -1, source="train.tsv", labels=lambda item: [item[1]])      # the whole file
    assert not caplog.records
