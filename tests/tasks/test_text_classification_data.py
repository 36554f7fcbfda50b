"""text_classification data formats, read in-process: dataset_convert sources and the training file reader."""

from __future__ import annotations

import pytest

from tao_launcher.errors import DataError
from tao_launcher.tasks.text_classification import data


def write_imdb(root, split, label, name, text):
    path = root / "aclImdb" / split / label / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_imdb_folder_converts_with_markup_and_tabs_removed(tmp_path):
    src = tmp_path / "src"
    write_imdb(src, "train", "pos", "1_9.txt", "Great<br /><br />film\twith tabs.")
    write_imdb(src, "train", "neg", "2_1.txt", "Awful.\nTruly.")
    write_imdb(src, "test", "pos", "3_8.txt", "Lovely.")
    write_imdb(src, "test", "neg", "4_2.txt", "Dull.")
    counts = data.convert("imdb", src, tmp_path / "out")
    assert counts == {"train.tsv": 2, "dev.tsv": 2}
    rows = sorted((tmp_path / "out" / "train.tsv").read_text().splitlines())
    assert rows == ["Awful. Truly.\t0", "Great film with tabs.\t1"]
    assert (tmp_path / "out" / "labels.txt").read_text().split() == ["negative", "positive"]
    assert data.read_examples(tmp_path / "out" / "dev.tsv", num_classes=2)[1] in ([1, 0], [0, 1])


def test_sst2_bad_line_names_file_and_line_and_leaves_no_partial_output(tmp_path):
    src = tmp_path / "sst2"
    src.mkdir()
    (src / "train.tsv").write_text("sentence\tlabel\ngood\t1\n")
    (src / "dev.tsv").write_text("sentence\tlabel\nok\t1\nbad\tmaybe\n")  # train.tsv converts first
    with pytest.raises(DataError, match=rf"{src / 'dev.tsv'}:3: expected 'sentence<TAB>0 or 1'"):
        data.convert("sst2", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()   # not even the folder it made


def test_sst2_test_split_becomes_plain_sentences_for_infer(tmp_path):
    src = tmp_path / "sst2"
    src.mkdir()
    (src / "train.tsv").write_text("sentence\tlabel\ngood\t1\n")
    (src / "dev.tsv").write_text("sentence\tlabel\nbad\t0\n")
    (src / "test.tsv").write_text("index\tsentence\n0\tfirst one\n1\tsecond one\n")
    data.convert("sst2", src, tmp_path / "out")
    assert data.read_sentences(tmp_path / "out" / "test.txt") == ["first one", "second one"]


def test_reader_skips_header_and_blank_lines_and_honours_num_samples(tmp_path):
    f = tmp_path / "d.tsv"
    f.write_text("sentence\tlabel\na\t0\n\nb\t1\nc\t0\n")
    assert data.read_examples(f) == (["a", "b", "c"], [0, 1, 0])
    sentences, labels = data.read_examples(f, num_samples=2)   # two of them, in file order (tests/test_num_samples.py)
    assert len(sentences) == 2 and sentences == sorted(sentences) and labels == [{"a": 0, "b": 1, "c": 0}[s]
                                                                                 for s in sentences]


@pytest.mark.parametrize("line, message", [
    ("no tab here", "expected 'sentence<TAB>label'"),
    ("text\tpositive", "is not an integer id"),
    ("text\t-1", "is out of range"),
    ("\t1", "expected 'sentence<TAB>label'"),
])
def test_reader_rejects_bad_lines_with_file_and_line(tmp_path, line, message):
    f = tmp_path / "d.tsv"
    f.write_text(f"fine\t0\n{line}\n")
    with pytest.raises(DataError, match=rf"{f}:2: .*{message}"):
        data.read_examples(f, num_classes=2)


def test_class_labels_file_must_match_num_classes(tmp_path):
    f = tmp_path / "labels.txt"
    f.write_text("a\nb\nc\n")
    assert data.read_label_names(str(f), 3) == ["a", "b", "c"]
    with pytest.raises(DataError, match="names 3 classes but model.dataset.num_classes is 2"):
        data.read_label_names(str(f), 2)


def test_readers_tell_a_folder_from_a_missing_file_and_name_bad_bytes(tmp_path):
    with pytest.raises(DataError, match=f"data file {tmp_path} is a folder, not a file"):
        data.read_examples(tmp_path)
    with pytest.raises(DataError, match=f"input file {tmp_path / 'no.txt'} does not exist"):
        data.read_sentences(tmp_path / "no.txt")
    f = tmp_path / "d.tsv"
    f.write_bytes(b"\xef\xbb\xbfsentence\tlabel\ngood\t1\nbad \xff\t0\n")  # a BOM before the header is fine
    with pytest.raises(DataError, match=rf"{f}:3: not UTF-8 text"):
        data.read_examples(f)
