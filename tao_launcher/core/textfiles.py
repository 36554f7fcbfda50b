"""Reading users' text files, with errors that name ``FILE:LINE`` and the fix.

Every task's data.py reads files a user wrote or edited (training text, label lists, infer input) and has to
say where a file is wrong and how to fix it; this module is the one place that does that reading, so the
tasks agree on it: UTF-8 only (a bad byte names file, line, byte and column), a BOM on the first line is
dropped, a folder given as a file is told apart from a missing file, a label list is one label a line with
no gaps or repeats, and NeMo's parallel ``text_*.txt`` / ``labels_*.txt`` files line up word for word.
A data section's ``num_samples`` is one draw for every task (``subset``).
No torch here: the launcher and the tests read data without it.
"""

from __future__ import annotations

import logging
import random
import unicodedata
from itertools import zip_longest
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

from tao_launcher.errors import DataError
from tao_launcher.spec.load import file_problem

log = logging.getLogger("tao.data")
UTF8_FIX = "save the file as UTF-8 text"
PARALLEL_FIX = "check the spec's paths: dataset_convert writes text_<split>.txt and labels_<split>.txt"
INVISIBLE = ("Cc", "Cf", "Zs", "Zl", "Zp")   # Unicode categories that print nothing (controls, format, spaces)
SUBSET_SEED = 42  # num_samples' draw where the spec has no trainer.seed (evaluate): that seed's default
SHOWN_LABELS = 8  # missing labels named in subset's warning; the rest are counted
T = TypeVar("T")


def read_lines(path: str | Path) -> Iterator[Tuple[int, str]]:
    """(line number from 1, text without its line end) of a UTF-8 file; a bad byte is a DataError naming
    file:line, the byte and its column. A BOM at the start of the file is dropped."""
    from tao_launcher.core.progress import file_lines  # a bar for big files, on a terminal

    with open(path, "rb") as f:
        for number, raw in enumerate(file_lines(f, path), start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                                f"{err.start + 1}); {UTF8_FIX}") from None
            if number == 1:
                text = text.lstrip("\ufeff")
            yield number, text.rstrip("\n").rstrip("\r")


def check_file(path: Path, what: str, fix: str) -> None:
    """A DataError ``WHAT PATH is a folder, not a file: FIX`` (or ``does not exist``, ``is not a regular file (a
    FIFO)``: ``spec.load.file_problem``)."""
    problem = file_problem(path)
    if problem:
        raise DataError(f"{what} {path} {problem}: {fix}")


def visible(text: str) -> bool:
    """Whether ``text`` shows anything: a character that is neither white space nor an invisible format or
    control character (a zero-width space, a BOM). A text without one is empty, wherever a text is checked."""
    return any(not ch.isspace() and unicodedata.category(ch) not in INVISIBLE for ch in text)


def no_words(where: str, text: str) -> str:
    """The one sentence for an infer input with nothing to predict on, in every task; ``where`` is
    ``input_batch item N`` or ``FILE:LINE:``."""
    if not visible(text):
        return f"{where} is blank: write a text there, or remove it"
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{where} {shown!r} has no words, only punctuation or symbols: add a word, or remove it"


def input_text(path: Path, number: int, line: str, words: Callable[[str], List[str]] = str.split) -> Optional[str]:
    """Line ``number`` of an infer ``input_file`` as an input: stripped, None when blank (skipped), and a
    DataError naming ``FILE:LINE`` when it holds no word by the task's word rule ``words``."""
    text = line.strip()
    if not visible(text):
        return None
    if not words(text):
        raise DataError(no_words(f"{path}:{number}:", text))
    return text


def read_input_lines(path: str | Path, *, fix: str, empty_fix: str,
                     words: Callable[[str], List[str]] = str.split) -> List[str]:
    """The inputs of an infer ``input_file``, one a line (``input_text``); ``fix`` for a missing file or a
    folder, ``empty_fix`` for a file with no text."""
    path = Path(path)
    check_file(path, "input file", fix)
    lines = [text for number, line in read_lines(path) if (text := input_text(path, number, line, words))]
    if not lines:
        raise DataError(f"input file {path} is empty: {empty_fix}")
    return lines


def read_label_list(path: str | Path, *, fix: str, check: Optional[Callable[[int, str], None]] = None,
                    empty_fix: str = "write one label a line") -> List[str]:
    """The labels of a label ids file, one a line, line N naming id N-1 (blank lines at the end are fine).

    ``fix`` says where the right file is (for a missing file or a folder), ``empty_fix`` what an empty file
    should hold. ``check(line_number, label)`` adds a task's own rules by raising a DataError; it sees the
    stripped label, before the repeat check; the first label is always on line 1 (a blank line before a
    label is an error)."""
    path = Path(path)
    check_file(path, "label ids file", fix)
    labels: List[str] = []
    seen = {}
    blank = 0
    for number, line in read_lines(path):
        label = line.strip()
        if not label:
            blank = blank or number
            continue
        if blank:
            raise DataError(f"{path}:{blank}: blank line before the label on line {number}; line N names label "
                            f"id N-1, so delete the blank line")
        if check is not None:
            check(number, label)
        if label in seen:
            raise DataError(f"{path}:{number}: label {label!r} repeats line {seen[label]}; delete one of them")
        seen[label] = number
        labels.append(label)
    if not labels:
        raise DataError(f"label ids file {path} is empty: {empty_fix}")
    return labels


def read_parallel(text_file: str | Path, labels_file: str | Path) -> Iterator[Tuple[int, List[str], List[str]]]:
    """(line number, words, labels) of each line of NeMo's parallel text/labels files, split on spaces.

    Line N of the labels file holds one label for each word of line N of the text file. A line blank in both
    is skipped, and so are blank lines at the end of either file; a line whose word and label counts differ,
    a line one file lacks, or no sentence at all is a DataError naming file:line. Every line is read (and
    checked): ``subset`` draws num_samples from them."""
    text_file, labels_file = Path(text_file), Path(labels_file)
    check_file(text_file, "text file", PARALLEL_FIX)
    check_file(labels_file, "labels file", PARALLEL_FIX)
    files = (text_file, labels_file)
    readers = (read_lines(text_file), read_lines(labels_file))
    ends = [0, 0]  # the last non-blank line of the text file and of the labels file, so far
    count = 0
    for text_item, labels_item in zip_longest(*readers):
        if text_item is None or labels_item is None:
            longer = 0 if labels_item is None else 1
            number, line = text_item or labels_item
            if not line.strip():
                continue
            ends[longer] = max([number] + [n for n, more in readers[longer] if more.strip()])
            raise DataError(f"{files[1 - longer]}:{number}: missing: {text_file} has {ends[0]} lines but "
                            f"{labels_file} has {ends[1]}; line N of the labels file holds the labels of line N "
                            f"of the text file: make them line up")
        (number, text), (_, labels_line) = text_item, labels_item
        words, labels = text.split(), labels_line.split()
        if words:
            ends[0] = number
        if labels:
            ends[1] = number
        if not words and not labels:
            continue
        if len(words) != len(labels):
            raise DataError(f"{labels_file}:{number}: {len(labels)} labels for the {len(words)} words of "
                            f"{text_file}:{number}; give every word exactly one label")
        yield number, words, labels
        count += 1
    if not count:
        raise DataError(f"text file {text_file} holds no sentences: write one sentence a line, and its labels on "
                        f"the same line of {labels_file} (dataset_convert writes them)")


def subset(items: Sequence[T], num_samples: int, *, source: str | Path, seed: int = SUBSET_SEED,
           labels: Optional[Callable[[T], Iterable[str]]] = None, what: str = "labels",
           unit: str = "examples") -> List[T]:
    """A data section's ``num_samples``: that many of ``items`` (a file's examples, all read and checked), drawn
    at random with ``seed`` (the spec's ``trainer.seed``; ``SUBSET_SEED`` where it has none) and kept in file
    order; all of them for -1 or a number not below their count.

    Drawn, not the first N: data files are often sorted (dataset_convert writes FSDD digit by digit), and the
    first N would silently train on a few classes. ``labels(item)`` names an item's labels (its ``what``:
    classes, tags, characters); when the draw lacks some that the whole of ``source`` has, one warning names
    them: a model never trained on a label, or an evaluation that never tests it, should not pass unnoticed.
    """
    if num_samples < 0 or num_samples >= len(items):
        return list(items)
    chosen = [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), num_samples))]
    if labels is not None:
        every = {label: None for item in items for label in labels(item)}  # first-seen order
        kept = {label for item in chosen for label in labels(item)}
        missing = [label for label in every if label not in kept]
        if missing:
            named = " ".join(missing[:SHOWN_LABELS]) + (f" and {len(missing) - SHOWN_LABELS} more"
                                                        if len(missing) > SHOWN_LABELS else "")
            log.warning("num_samples=%d draws %d of the %d %s of %s, which lack %d of its %d %s (%s): raise "
                        "num_samples to include them", num_samples, num_samples, len(items), unit, source,
                        len(missing), len(every), what, named)
    return chosen


def data_folder(data_dir: str) -> Path:
    """``data_dir`` of the tasks whose files dataset_convert writes into one folder, checked before any read."""
    folder = Path(data_dir)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(f"data_dir {folder} {what}: set data_dir= to the folder that dataset_convert wrote")
    return folder
