"""token_classification (NER) data: the TAO 3.0 / NeMo training format, dataset_convert for CoNLL, infer files.

Training format (what train, finetune and evaluate read; what dataset_convert writes), NeMo's two-file form::

    text_<split>.txt     one sentence a line, words separated by spaces
    labels_<split>.txt   the same number of lines: line N holds one tag per word of line N of text_<split>.txt,
                         separated by spaces (IOB2: B-X starts an X entity, I-X continues it, O is outside)
    label_ids.csv        one label a line; the first line is label id 0, the next id 1, ...; 'O' first

``<split>`` is ``train``, ``dev`` or ``test``. A line empty in both files is skipped; every tag must be in
label_ids.csv.

Source for dataset_convert: CoNLL files (CoNLL-2003 ``eng.train``, ``eng.testa``, ``eng.testb``), a folder of them
or one file. One word a line, columns separated by whitespace, the first column the word and the last its tag
(CoNLL-2003: ``word POS chunk tag``); a blank line between sentences; ``-DOCSTART-`` lines are skipped. Tags may be
IOB1, IOB2 or IOBES and are written as IOB2 (an ``I-X`` that does not continue an X entity becomes ``B-X``).
The split comes from the file name: ``train`` -> train; ``testa``, ``dev`` or ``valid`` -> dev; ``testb`` or
``test`` -> test. Files whose name says none are ignored (the log names them), except that a single source file
with no split in its name is the train split. label_ids.csv lists every tag of every split, 'O' first, then sorted.

infer ``input_file``: one sentence a line, words separated by spaces; blank lines are skipped. infer writes each
sentence as NeMo does, a word with a tag other than O followed by the tag in brackets::

    Jim[B-PER] bought 300 shares of Acme[B-ORG] Corp.[I-ORG]
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from tao_launcher.core.convert import check_not_converted, not_converted, staged_into, written
from tao_launcher.core.textfiles import (SUBSET_SEED, read_input_lines, read_label_list, read_lines, read_parallel,
                                         subset)
from tao_launcher.errors import DataError, UsageError
from tao_launcher.core.textfiles import data_folder

TASK = "token_classification"
log = logging.getLogger("tao.token_classification")
SPLITS = ("train", "dev", "test")
LABEL_IDS = "label_ids.csv"
OUTSIDE = "O"
# file-name parts that name a split, checked in this order (testa and testb before test)
_SPLIT_NAMES = (("train", "train"), ("testa", "dev"), ("dev", "dev"), ("valid", "dev"),
                ("testb", "test"), ("test", "test"))
_WHAT_SPLITS = "'train' for train, 'testa', 'dev' or 'valid' for dev, 'testb' or 'test' for test"


# ----------------------------------------------------------------------------- words

def _visible(word: str) -> bool:
    """Whether a word has a character a tokenizer keeps (not only control, format or space characters)."""
    return any(unicodedata.category(c)[0] not in "CZ" for c in word)


# ----------------------------------------------------------------------------- label_ids.csv

def read_label_ids(path: str | Path) -> List[str]:
    """The labels of label_ids.csv, id order; a missing, empty or repeating file is a DataError with the fix."""
    path = Path(path)

    def one_word(number: int, label: str) -> None:
        if len(label.split()) > 1:
            raise DataError(f"{path}:{number}: label {label!r} contains a space; tags are separated by spaces, "
                            f"so write one label without spaces a line")

    return read_label_list(path, fix=f"point it at the {LABEL_IDS} that dataset_convert wrote", check=one_word,
                           empty_fix=f"write one label a line, '{OUTSIDE}' first (dataset_convert writes "
                                     f"{LABEL_IDS})")


def write_label_ids(path: str | Path, labels: Sequence[str]) -> None:
    """Write label_ids.csv: one label a line, line N (from 0) is id N."""
    if len(set(labels)) != len(labels) or not all(label and len(label.split()) == 1 for label in labels):
        raise ValueError(f"labels must be distinct and each one word: {list(labels)}")
    Path(path).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


# ----------------------------------------------------------------------------- the training files

def read_examples(text_file: str | Path, labels_file: str | Path, num_samples: int = -1,
                  label_ids: Optional[Sequence[str]] = None, seed: int = SUBSET_SEED,
                  ) -> Tuple[List[List[str]], List[List[str]]]:
    """(words, tags) of each sentence of a text_<split>.txt / labels_<split>.txt pair; a bad line is a DataError
    naming file:line and the fix. ``num_samples`` > 0 draws that many sentences (``textfiles.subset``, ``seed``)."""
    labels_file = Path(labels_file)
    known = set(label_ids) if label_ids is not None else None
    sentences: List[List[str]] = []
    tags: List[List[str]] = []
    for number, words, labels in read_parallel(text_file, labels_file):
        if known is not None:
            for label in labels:
                if label not in known:
                    raise DataError(f"{labels_file}:{number}: tag {label!r} is not in {LABEL_IDS} "
                                    f"({len(known)} labels); add it to {LABEL_IDS} or fix the line")
        sentences.append(words)
        tags.append(labels)
    drawn = subset(list(zip(sentences, tags)), num_samples, source=labels_file, seed=seed,
                   labels=lambda example: example[1], what="tags", unit="sentences")
    return [words for words, _ in drawn], [labels for _, labels in drawn]


def label_set(label_ids: Optional[str], data_dir: str) -> List[str]:
    """The spec's label set: ``label_ids`` when given, else label_ids.csv in data_dir."""
    return read_label_ids(Path(label_ids) if label_ids else data_folder(data_dir) / LABEL_IDS)


def read(data_dir: str, ds, label_names: Sequence[str], seed: int = SUBSET_SEED,
         ) -> Tuple[List[List[str]], List[List[str]]]:
    """(words, tags) of the split a data section (``text_file``, ``labels_file``, ``num_samples``) names in data_dir;
    ``seed`` draws num_samples."""
    folder = data_folder(data_dir)
    return read_examples(folder / ds.text_file, folder / ds.labels_file, ds.num_samples, label_names, seed)


def read_sentences(path: str | Path) -> List[str]:
    """Sentences for infer: one a line, blank lines skipped."""
    return read_input_lines(path, fix="set input_file to a text file with one sentence a line",
                            empty_fix="write one sentence a line in it")


def tagged_text(words: Sequence[str], tags: Sequence[str]) -> str:
    """NeMo's infer output: the words, each one tagged other than O followed by ``[TAG]``."""
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    return " ".join(word if tag == OUTSIDE else f"{word}[{tag}]" for word, tag in zip(words, tags))


def to_iob2(tags: Sequence[str]) -> List[str]:
    """IOB1, IOB2 or IOBES tags as IOB2, entity for entity by the conlleval rules (core.metrics.extract_spans):
    an I-X (or E-X) continues an open X entity, else it starts one, written B-X; S-X is B-X."""
    out: List[str] = []
    prev, kind = OUTSIDE, ""  # the previous tag's prefix, and its type
    for tag in tags:
        if tag == OUTSIDE:
            prefix, type_ = OUTSIDE, ""
        else:
            prefix, type_ = tag[0], tag[2:]
        continues = prefix in ("I", "E") and prev in ("B", "I") and type_ == kind
        out.append(OUTSIDE if prefix == OUTSIDE else f"{'I' if continues else 'B'}-{type_}")
        prev, kind = prefix, type_
    return out


# ----------------------------------------------------------------------------- dataset_convert

def split_of(name: str) -> Optional[str]:
    """The split a CoNLL file's name says: train, dev, test or None."""
    lower = name.lower()
    for part, split in _SPLIT_NAMES:
        if part in lower:
            return split
    return None


def _source_files(source: Path) -> Dict[str, List[Path]]:
    if source.is_file():
        check_not_converted(source, "source_data_dir")
        return {split_of(source.name) or "train": [source]}
    found: Dict[str, List[Path]] = {}
    for file in not_converted(sorted(source.iterdir())):  # a target equal to the source holds this convert's files
        if not file.is_file() or file.name.startswith("."):
            continue
        split = split_of(file.name)
        if split is None:
            log.warning("ignored %s: its name names no split (%s)", file, _WHAT_SPLITS)
            continue
        found.setdefault(split, []).append(file)
    return found


def _read_conll(file: Path) -> Iterator[Tuple[List[str], List[str]]]:
    """(words, IOB2 tags) of each sentence of a CoNLL file."""
    words: List[str] = []
    tags: List[str] = []
    count = 0
    for number, line in read_lines(file):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if words:
                yield words, to_iob2(tags)
                count += 1
            words, tags = [], []
            continue
        if len(columns) < 2:
            raise DataError(f"{file}:{number}: expected 'word ... tag' columns separated by spaces, got "
                            f"{line.strip()[:60]!r}; add the tag as the last column or delete the line")
        word, tag = columns[0], columns[-1]
        if not _visible(word):
            raise DataError(f"{file}:{number}: the word {word!r} has no visible character; delete the line")
        if tag != OUTSIDE and not (len(tag) > 2 and tag[0] in "BIES" and tag[1] == "-"):
            raise DataError(f"{file}:{number}: the last column {tag!r} is not an IOB tag; expected {OUTSIDE}, "
                            f"B-TYPE or I-TYPE there (the NER tag must be the last column)")
        words.append(word)
        tags.append(tag)
    if words:
        yield words, to_iob2(tags)
        count += 1
    if not count:
        raise DataError(f"{file} holds no sentences: expected CoNLL lines 'word ... tag', a blank line between "
                        f"sentences")


def convert(source: Path, target: Path, overwrite: bool = False) -> Dict[str, int]:
    """Write text_<split>.txt, labels_<split>.txt and label_ids.csv into ``target`` from CoNLL files;
    returns the sentences per text file and the labels in label_ids.csv. ``overwrite``: the user lets it
    replace files of those names that no dataset_convert wrote (core/convert.py)."""
    source, target = Path(source), Path(target)
    if not source.exists():
        raise UsageError(f"source_data_dir {source} does not exist: download the CoNLL files there first")
    files = _source_files(source)
    if "train" not in files:
        listed = [p for p in sorted(source.iterdir()) if p.is_file() and not p.name.startswith(".")] \
            if source.is_dir() else [source]
        found = not_converted(listed)
        outputs = f" (and {len(listed) - len(found)} that dataset_convert wrote)" if len(found) < len(listed) else ""
        raise UsageError(f"no training file in {source}: expected a CoNLL file with 'train' in its name "
                         f"(like eng.train; {_WHAT_SPLITS}); found: "
                         f"{', '.join(p.name for p in found) or 'no files'}{outputs}")
    earlier = written(target)  # an earlier convert's split that this one does not write must not stay behind
    names = [f"{kind}_{split}.txt" for split in SPLITS for kind in ("text", "labels")
             if split in files or f"{kind}_{split}.txt" in earlier]
    counts: Dict[str, int] = {}
    labels = {OUTSIDE}
    with staged_into(target, names + [LABEL_IDS], overwrite=overwrite) as stage:  # nothing half-written in target
        for split in SPLITS:
            if split not in files:
                continue
            count = 0
            with open(stage / f"text_{split}.txt", "w", encoding="utf-8") as text, \
                    open(stage / f"labels_{split}.txt", "w", encoding="utf-8") as tags_out:
                for file in files[split]:
                    for words, tags in _read_conll(file):
                        text.write(" ".join(words) + "\n")
                        tags_out.write(" ".join(tags) + "\n")
                        labels.update(tags)
                        count += 1
            counts[f"text_{split}.txt"] = count
            log.info("%s: %d sentences from %s", f"text_{split}.txt", count, ", ".join(p.name for p in files[split]))
        write_label_ids(stage / LABEL_IDS, [OUTSIDE] + sorted(labels - {OUTSIDE}))
        counts[LABEL_IDS] = len(labels)
    return counts
