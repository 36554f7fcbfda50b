"""punctuation_and_capitalization data: the NeMo training format, dataset_convert, and the word rule.

Training format (what train, finetune and evaluate read; what dataset_convert writes)::

    text_<split>.txt        one sentence or paragraph a line: words lower-cased, without punctuation, one space apart
    labels_<split>.txt      the same lines, one label a word: the punctuation after the word (O for none, or a
                            mark such as , . ?) then its case (U: first letter upper case, O: not)
    punct_label_ids.csv     punctuation labels, one a line, line N is id N-1: O , . ? then any extra marks
    capit_label_ids.csv     case labels: O then U

Example: ``How are you? I am fine.`` is ``how are you i am fine`` with the labels ``OU OO ?O OU OO .O``.

dataset_convert reads a ``*.txt`` file, any file given by name, or a folder's ``*.txt`` files (not its
subfolders), each in the form its first non-blank line shows:

- raw text (no TAB): cased, punctuated prose, one paragraph or sentence a line, split on whitespace; each
  token is read by the word rule below.
- IWSLT form (a TAB): one ``token<TAB>label`` a line, labels ``O``, ``COMMA``, ``PERIOD``, ``QUESTION``, text
  lower-cased. Sentences end at PERIOD or QUESTION and are packed whole into lines of at most 64 words (a
  longer one is cut every 64 words); a blank line ends a line. The clitics ``'s 're 'm 'll 've 'd n't`` join
  the word before them (``do n't`` -> ``don't``); a token with no letter or digit is no word. The form has
  no case: every case label is O, and convert warns that a model trained on it alone cannot learn case.

All lines (files in name order) are split into train and dev: ``dev_ratio`` of them (rounded, at least one
when dev_ratio > 0, never all), drawn by a shuffle seeded with ``seed``; each split keeps the source's order.
dev_ratio=0 writes train only, and removes a dev split an earlier convert wrote (a user's own is refused, as
any file of these names that no convert wrote: core/convert.py).

The word rule (convert, IWSLT tokens and infer's ``normalize_input``):

- a word keeps its letters and digits, and each apostrophe (' or ’, written ') and hyphen or dash (- ‐ ‑ – —,
  written -) between two of them (``don't``, ``well-known``); all else is dropped (``3.5`` -> ``35``); a token
  left with no letter or digit is no word;
- its punctuation label is the last configured mark (``punct_marks``, default ``,.?``) after its last letter
  or digit and in the word-less tokens that follow it (``end?!`` -> ``?``, ``"Yes,"`` -> ``,``, ``word ?`` ->
  ``?``); O when there is none (``Hi!`` -> O: ``!`` is no mark unless configured);
- its case label is U when its first letter is upper case (``NASA`` and ``Nasa`` both restore as ``Nasa``;
  ``2024`` is O).
"""

from __future__ import annotations

import logging
import random
import unicodedata
from itertools import chain
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from tao_launcher.core.convert import check_not_converted, check_target, not_converted, staged_into
from tao_launcher.core.textfiles import (SUBSET_SEED, data_folder, read_input_lines, read_label_list, read_lines,
                                         read_parallel, subset)
from tao_launcher.errors import DataError, UsageError

TASK = "punctuation_and_capitalization"
log = logging.getLogger("tao.punctuation_and_capitalization")

NO_LABEL = "O"
UPPER = "U"
STANDARD_MARKS = ",.?"
DEFAULT_PUNCT_LABELS = [NO_LABEL, ",", ".", "?"]
DEFAULT_CAPIT_LABELS = [NO_LABEL, UPPER]
PUNCT_LABEL_IDS = "punct_label_ids.csv"
CAPIT_LABEL_IDS = "capit_label_ids.csv"
IWSLT_LABELS = {"O": NO_LABEL, "COMMA": ",", "PERIOD": ".", "QUESTION": "?"}
IWSLT_SENTENCE_ENDS = ("PERIOD", "QUESTION")
IWSLT_CLITICS = {"'s", "'re", "'m", "'ll", "'ve", "'d", "n't"}
MAX_LINE_WORDS = 64

_APOSTROPHES = "'\u2019"
_DASHES = "-\u2010\u2011\u2013\u2014"

Line = Tuple[List[str], List[str], List[str]]  # words, punct labels, capit labels


# ----------------------------------------------------------------------------- the word rule

def _clean(token: str) -> str:
    """The word of ``token`` by the word rule, case kept ('' when it holds no letter or digit)."""
    token = unicodedata.normalize("NFC", token)
    kept = []
    for i, char in enumerate(token):
        if char.isalnum():
            kept.append(char)
        elif (char in _APOSTROPHES or char in _DASHES) and 0 < i < len(token) - 1 \
                and token[i - 1].isalnum() and token[i + 1].isalnum():
            kept.append("'" if char in _APOSTROPHES else "-")
    return "".join(kept)


def _trailing_mark(chars: str, marks: str) -> Optional[str]:
    """The last configured mark in ``chars``, or None."""
    return next((char for char in reversed(chars) if char in marks), None)


def _first_letter(word: str) -> int:
    """The index of the first letter of ``word`` (what its case label is about), -1 when it has none."""
    return next((i for i, char in enumerate(word) if char.isalpha()), -1)


def _raw_line(text: str, marks: str) -> Line:
    """Words and labels of one line of raw prose, by the word rule."""
    words: List[str] = []
    punct: List[str] = []
    capit: List[str] = []
    for token in text.split():
        word = _clean(token)
        if word:
            last = max(i for i, char in enumerate(token) if char.isalnum())
            first = _first_letter(word)
            words.append(word.lower())
            punct.append(_trailing_mark(token[last + 1:], marks) or NO_LABEL)
            capit.append(UPPER if first >= 0 and word[first].isupper() else NO_LABEL)
        elif words:  # a token of punctuation only: its last mark belongs to the word before
            punct[-1] = _trailing_mark(token, marks) or punct[-1]
    return words, punct, capit


def normalize_input(text: str) -> List[str]:
    """The words infer feeds the model for ``text``: lower-cased, by the word rule."""
    return [word.lower() for word in map(_clean, text.split()) if word]


def restore(words: Sequence[str], punct: Sequence[str], capit: Sequence[str]) -> str:
    """Rebuild text from words and their labels: U capitalises the first letter, the mark follows."""
    if not len(words) == len(punct) == len(capit):
        raise ValueError(f"restore needs one punctuation and one case label a word: "
                         f"{len(words)} words, {len(punct)} punctuation and {len(capit)} case labels")
    out = []
    for word, mark, case in zip(words, punct, capit):
        first = _first_letter(word)
        if case == UPPER and first >= 0:
            word = word[:first] + word[first].upper() + word[first + 1:]
        out.append(word if mark == NO_LABEL else word + mark)
    return " ".join(out)


# ----------------------------------------------------------------------------- readers

def read_label_ids(path: str | Path) -> List[str]:
    """Labels of a label ids file: one a line, line N is id N-1, O first."""
    path = Path(path)

    def one_character_o_first(number: int, label: str) -> None:
        if len(label) != 1:
            raise DataError(f"{path}:{number}: label {label[:20]!r} is not one character; a punctuation "
                            f"label is one mark (or O) and a case label is O or U")
        if number == 1 and label != NO_LABEL:
            raise DataError(f"{path}:{number}: the first label is {label!r}; it must be O (no punctuation, "
                            f"lower case), id 0")

    return read_label_list(path, fix="give the punct_label_ids.csv or capit_label_ids.csv that dataset_convert "
                                     "writes", check=one_character_o_first,
                           empty_fix="write one label a line, O first")


def write_lines(path: str | Path, lines: Iterable[str]) -> None:
    """UTF-8 text, one item a line: the split files, and the label ids files (line N is id N-1)."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(f"{line}\n" for line in lines)


write_label_ids = write_lines


def read_label_sets(data_dir: str, punct_file: Optional[str], capit_file: Optional[str]
                    ) -> Tuple[List[str], List[str]]:
    """train's punctuation and case labels: the model section's files, else data_dir's."""
    folder = data_folder(data_dir)
    punct = read_label_ids(Path(punct_file) if punct_file else folder / PUNCT_LABEL_IDS)
    capit = read_label_ids(Path(capit_file) if capit_file else folder / CAPIT_LABEL_IDS)
    if len(punct) < 2 or UPPER not in capit:  # O first is read_label_ids' rule
        raise DataError(f"the label sets must have O first and at least one mark among the punctuation labels, and U "
                        f"among the case labels "
                        f"(got {' '.join(punct)} and {' '.join(capit)}): rewrite them with dataset_convert")
    return punct, capit


def read_split(data_dir: str, ds, config: Dict, trained: Optional[str] = None, seed: int = SUBSET_SEED):
    """The examples of the data section ``ds`` (its files in data_dir) for the label sets of the model config.
    ``trained`` names the archive those come from (finetune, evaluate: no file can add a mark to them); ``seed``
    draws num_samples."""
    folder = data_folder(data_dir)
    fix = (f"{trained} knows only these marks: fix the label, or train a new model on this label set"
           if trained else None)
    return read_examples(folder / ds.text_file, folder / ds.labels_file, ds.num_samples,
                         config["punct_labels"], config["capit_labels"], mark_fix=fix, seed=seed)


def read_examples(text_file: str | Path, labels_file: str | Path, num_samples: int = -1,
                  punct_labels: Optional[Sequence[str]] = None,
                  capit_labels: Optional[Sequence[str]] = None, mark_fix: Optional[str] = None,
                  seed: int = SUBSET_SEED) -> Tuple[List[List[str]], List[List[str]], List[List[str]]]:
    """Words, punctuation tags and case tags of parallel text/labels files.

    A line blank in both files is skipped; a bad line is a DataError naming file:line and the fix
    (``mark_fix`` for a mark outside ``punct_labels``, when they are a model's and no file can add it).
    ``num_samples`` > 0 draws that many lines (``textfiles.subset``, with ``seed``)."""
    labels_file = Path(labels_file)
    punct_set = DEFAULT_PUNCT_LABELS if punct_labels is None else list(punct_labels)
    capit_set = DEFAULT_CAPIT_LABELS if capit_labels is None else list(capit_labels)
    lines: List[Line] = []
    for number, words, labels in read_parallel(text_file, labels_file):
        for position, label in enumerate(labels, start=1):
            where = f"{labels_file}:{number}: label {label!r} (word {position})"
            if len(label) != 2:
                raise DataError(f"{labels_file}:{number}: label {label[:20]!r} (word {position}) is not 2 "
                                f"characters; a label is the punctuation after the word then its case, "
                                f"e.g. 'OU' or ',O'")
            if label[0] not in punct_set:
                raise DataError(f"{where} has punctuation {label[0]!r}, not one of {' '.join(punct_set)}; " + (
                    mark_fix or f"fix the label or add the mark to the punctuation label ids ({PUNCT_LABEL_IDS})"))
            if label[1] not in capit_set:
                raise DataError(f"{where} has case {label[1]!r}, not one of {' '.join(capit_set)}; the second "
                                f"character is U (first letter upper case) or O")
        lines.append((words, [label[0] for label in labels], [label[1] for label in labels]))
    lines = subset(lines, num_samples, source=labels_file, seed=seed, labels=lambda line: line[1],
                   what="punctuation marks", unit="lines")
    words, punct, capit = (list(column) for column in zip(*lines))  # read_parallel yields at least one line
    return words, punct, capit


def read_texts(path: str | Path) -> List[str]:
    """Texts for infer: one a line, blank lines skipped, each with a word by the word rule."""
    return read_input_lines(path, fix="check input_file in the spec: a text file, one text a line",
                            empty_fix="write one text to punctuate a line", words=normalize_input)


# ----------------------------------------------------------------------------- dataset_convert

def convert(source: Path, target: Path, dev_ratio: float = 0.2, punct_marks: str = STANDARD_MARKS,
            seed: int = 42, overwrite: bool = False) -> Dict[str, int]:
    """Write text/labels for train (and dev) and the label ids files into ``target``; returns counts per file.
    ``overwrite``: the user lets it replace files of those names that no dataset_convert wrote (core/convert.py)."""
    source, target = Path(source), Path(target)
    if isinstance(dev_ratio, bool) or not isinstance(dev_ratio, (int, float)) or not 0 <= dev_ratio < 1:
        raise UsageError(f"dev_ratio {dev_ratio!r} must be a number in [0, 1): the share of lines for "
                         f"dev (0 writes train only)")
    marks = _check_marks(punct_marks)
    if not source.exists():
        raise UsageError(f"source_data_dir {source} does not exist: give a text file or a folder of *.txt files")
    if target.exists() and not target.is_dir():
        raise UsageError(f"target_data_dir {target} is a file: give a folder (it is created when missing)")
    # a dev split an earlier convert wrote goes when dev_ratio=0: it would not match this train split
    names = [f"{kind}_{split}.txt" for split in ("train", "dev") for kind in ("text", "labels")] + \
            [PUNCT_LABEL_IDS, CAPIT_LABEL_IDS]
    check_target(target, names, overwrite=overwrite)
    if source.is_file():
        check_not_converted(source, "source_data_dir")
    # a target equal to the source holds this convert's text files: they are no source
    files = [source] if source.is_file() else not_converted(sorted(f for f in source.glob("*.txt") if f.is_file()))
    if not files:
        raise UsageError(f"source_data_dir {source} holds no *.txt files: put the text files there, "
                         f"or give one file by name")

    lines: List[Line] = []
    iwslt_files = []
    for file in files:
        if _is_iwslt(file):
            iwslt_files.append(file)
            lines.extend(_iwslt_lines(file, marks))
        else:
            lines.extend(line for line in (_raw_line(text, marks) for _, text in read_lines(file)) if line[0])
    if iwslt_files:
        log.warning("%s %s in IWSLT form (token<TAB>label), which has no case: every capitalization label is O, "
                    "so a model trained on it alone cannot learn capitalization; add cased prose files to "
                    "learn it", ", ".join(str(f) for f in iwslt_files), "is" if len(iwslt_files) == 1 else "are")
    if not lines:
        raise DataError(f"source_data_dir {source} holds no words: give cased, punctuated text "
                        f"or token<TAB>label lines")

    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    n_dev = 0
    if dev_ratio > 0:
        if len(lines) < 2:
            raise UsageError(f"source_data_dir {source} holds 1 line: too few to split into train and dev; "
                             f"set dev_ratio=0 or give more text")
        n_dev = min(max(1, int(len(lines) * dev_ratio + 0.5)), len(lines) - 1)
    dev = set(order[:n_dev])  # each split keeps the source's order
    splits = {"train": [line for i, line in enumerate(lines) if i not in dev]}
    if n_dev:
        splits["dev"] = [line for i, line in enumerate(lines) if i in dev]

    punct_labels = [NO_LABEL] + [m for m in STANDARD_MARKS if m in marks] + \
                   [m for m in marks if m not in STANDARD_MARKS]
    counts: Dict[str, int] = {}
    with staged_into(target, names, overwrite=overwrite) as stage:  # the target never holds half a dataset
        for split, rows in splits.items():
            write_lines(stage / f"text_{split}.txt", (" ".join(words) for words, _, _ in rows))
            write_lines(stage / f"labels_{split}.txt", (" ".join(p + c for p, c in zip(punct, capit))
                                                        for _, punct, capit in rows))
            counts[f"text_{split}.txt"] = counts[f"labels_{split}.txt"] = len(rows)
            counts[f"words_{split}"] = sum(len(words) for words, _, _ in rows)
        for name, labels in ((PUNCT_LABEL_IDS, punct_labels), (CAPIT_LABEL_IDS, DEFAULT_CAPIT_LABELS)):
            write_lines(stage / name, labels)
            counts[name] = len(labels)
    return counts


def _check_marks(punct_marks: str) -> str:
    if not isinstance(punct_marks, str) or not punct_marks:
        raise UsageError(f"punct_marks {punct_marks!r} must be a non-empty string of marks, e.g. ',.?'")
    for char in punct_marks:
        if char.isalnum() or char.isspace():
            raise UsageError(f"punct_marks {punct_marks!r} holds {char!r}, which is no punctuation mark: "
                             f"give marks only, e.g. ',.?!'")
    return "".join(dict.fromkeys(punct_marks))


def _is_iwslt(file: Path) -> bool:
    """IWSLT form when the first non-blank line holds a TAB."""
    return "\t" in next((line for _, line in read_lines(file) if line.strip()), "")


def _iwslt_sentences(file: Path, marks: str) -> Iterator[Optional[Tuple[List[str], List[str]]]]:
    """(words, marks) of each sentence of a token<TAB>label file, cut every MAX_LINE_WORDS words; None for a
    blank line."""
    words: List[str] = []
    punct: List[str] = []
    for number, text in read_lines(file):
        if not text.strip():
            yield words, punct
            yield None
            words, punct = [], []
            continue
        parts = [part.strip() for part in text.split("\t")]
        if len(parts) != 2:
            raise DataError(f"{file}:{number}: expected 'token<TAB>label', got {text[:60]!r}; an IWSLT-form file "
                            f"(its first line holds a TAB) has one token and its label a line")
        token, label = parts
        if label not in IWSLT_LABELS:
            raise DataError(f"{file}:{number}: unknown label {label[:20]!r}; IWSLT labels are O, COMMA, PERIOD "
                            f"and QUESTION: fix the line")
        mark = IWSLT_LABELS[label] if IWSLT_LABELS[label] in marks else NO_LABEL
        word = _clean(token).lower()
        if token.lower() in IWSLT_CLITICS and words:
            words[-1] = _clean(words[-1] + token).lower()
        elif word:
            words.append(word)
            punct.append(NO_LABEL)
        if words and mark != NO_LABEL:
            punct[-1] = mark
        if label in IWSLT_SENTENCE_ENDS or len(words) >= MAX_LINE_WORDS:
            yield words, punct
            words, punct = [], []
    yield words, punct


def _iwslt_lines(file: Path, marks: str) -> List[Line]:
    """Whole sentences packed into lines of at most MAX_LINE_WORDS words; a blank line ends a line."""
    out: List[Line] = []
    words: List[str] = []
    punct: List[str] = []
    for sentence in chain(_iwslt_sentences(file, marks), [None]):
        if words and (sentence is None or len(words) + len(sentence[0]) > MAX_LINE_WORDS):
            out.append((words, punct, [NO_LABEL] * len(words)))
            words, punct = [], []
        if sentence is not None:
            words, punct = words + sentence[0], punct + sentence[1]
    return out
