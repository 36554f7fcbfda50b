"""punctuation_and_capitalization data: the NeMo training format, dataset_convert, and the infer text rules.

Training format (what train, finetune and evaluate read; what dataset_convert writes)::

    text_<split>.txt        one sentence or paragraph a line: words lower-cased, stripped of
                            punctuation, separated by single spaces
    labels_<split>.txt      the same lines, one label a word, space separated; a label is two
                            characters: the punctuation after the word (O for none, or a mark
                            such as , . ?) then the case of the word (U: first letter upper
                            case, O: not)
    punct_label_ids.csv     punctuation labels, one a line, line N is id N-1: O , . ? then any
                            extra configured marks
    capit_label_ids.csv     case labels: O then U

Example: ``How are you? I am fine.`` is the text line ``how are you i am fine`` and the
labels line ``OU OO ?O OU OO .O``.

Sources for dataset_convert: a ``*.txt`` file, any file given by name, or a folder (its
``*.txt`` files, not its subfolders). Each file is read in the form its first non-blank
line shows:

- raw text (no TAB on the first line): cased, punctuated prose, one paragraph or sentence
  a line. The line is split on whitespace and every token is read by the word rule below.
- IWSLT form (a TAB on the first line): one ``token<TAB>label`` a line, labels ``O``,
  ``COMMA``, ``PERIOD``, ``QUESTION``, text lower-cased, no line breaks between sentences.
  Sentences end at PERIOD or QUESTION; whole sentences are packed into lines of at most
  64 words (a longer sentence is cut every 64 words); a blank line ends a line. The
  clitic tokens ``'s 're 'm 'll 've 'd n't`` are joined to the word before them
  (``do n't`` -> ``don't``); a token with no letter or digit (``--``, or none: a line
  starting with the TAB) is no word, as in raw text. The form has no case: every case
  label is O, and convert warns that a model trained on it alone cannot learn
  capitalization.

The lines of all files (in file name order) are split into train and dev: ``dev_ratio`` of
them (rounded, at least one when dev_ratio > 0, never all), drawn by a shuffle seeded
with ``seed``; each split keeps the source's line order. With dev_ratio=0 only the train
files are written, and a text_dev.txt/labels_dev.txt left in the target by an earlier
convert is removed.

The word rule (one rule for convert, for IWSLT tokens and for infer's ``normalize_input``):

- the word keeps its letters and digits, and each apostrophe (' or ’, written ') and
  hyphen or dash (- ‐ ‑ – —, written -) that stands between two letters or digits
  (``don't``, ``well-known``); every other character is dropped, wherever it is
  (quotes, brackets, ``; : ! -``, and ``.``/``,`` inside a token: ``3.5`` -> ``35``);
- its punctuation label is the last configured mark (``punct_marks``, default ``,.?``)
  among the characters after its last letter or digit, and in the tokens that follow it
  holding no letter or digit (``end?!`` -> ``?``, ``"Yes,"`` -> ``,``, ``word ?`` ->
  ``?``); O when there is none (``Hi!`` -> O: ``!`` is not a mark unless configured);
- its case label is U when its first letter is upper case (``NASA`` and ``Nasa`` are
  both U, and both restore as ``Nasa``; a word with no letter, ``2024``, is O);
- a token left with no letter or digit (a lone ``-`` or ``"``) is no word: it is dropped.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tao_launcher.core.textfiles import read_input_lines, read_label_list, read_lines, read_parallel
from tao_launcher.errors import DataError, UsageError

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
    for char in reversed(chars):
        if char in marks:
            return char
    return None


def _case(word: str) -> str:
    for char in word:
        if char.isalpha():
            return UPPER if char.isupper() else NO_LABEL
    return NO_LABEL


def _raw_line(text: str, marks: str) -> Line:
    """Words and labels of one line of raw prose, by the word rule."""
    words: List[str] = []
    punct: List[str] = []
    capit: List[str] = []
    for token in text.split():
        word = _clean(token)
        if word:
            last = max(i for i, char in enumerate(token) if char.isalnum())
            words.append(word.lower())
            punct.append(_trailing_mark(token[last + 1:], marks) or NO_LABEL)
            capit.append(_case(word))
        elif words:  # a token of punctuation only: its last mark belongs to the word before
            mark = _trailing_mark(token, marks)
            if mark:
                punct[-1] = mark
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
        if case == UPPER:
            for i, char in enumerate(word):
                if char.isalpha():
                    word = word[:i] + char.upper() + word[i + 1:]
                    break
        out.append(word + ("" if mark == NO_LABEL else mark))
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


def write_label_ids(path: str | Path, labels: Sequence[str]) -> None:
    """Write labels one a line (line N is id N-1)."""
    Path(path).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


def read_examples(text_file: str | Path, labels_file: str | Path, num_samples: int = -1,
                  punct_labels: Optional[Sequence[str]] = None,
                  capit_labels: Optional[Sequence[str]] = None, mark_fix: Optional[str] = None,
                  ) -> Tuple[List[List[str]], List[List[str]], List[List[str]]]:
    """Words, punctuation tags and case tags of parallel text/labels files.

    A line blank in both files is skipped; a bad line is a DataError naming file:line and the fix
    (``mark_fix`` for a mark outside ``punct_labels``, when they are a model's and no file can add it)."""
    labels_file = Path(labels_file)
    punct_set = list(punct_labels) if punct_labels is not None else DEFAULT_PUNCT_LABELS
    capit_set = list(capit_labels) if capit_labels is not None else DEFAULT_CAPIT_LABELS
    all_words: List[List[str]] = []
    all_punct: List[List[str]] = []
    all_capit: List[List[str]] = []
    for number, words, labels in read_parallel(text_file, labels_file, num_samples):
        punct, capit = [], []
        for position, label in enumerate(labels, start=1):
            if len(label) != 2:
                raise DataError(f"{labels_file}:{number}: label {label[:20]!r} (word {position}) is not 2 "
                                f"characters; a label is the punctuation after the word then its case, "
                                f"e.g. 'OU' or ',O'")
            if label[0] not in punct_set:
                raise DataError(f"{labels_file}:{number}: label {label!r} (word {position}) has punctuation "
                                f"{label[0]!r}, not one of {' '.join(punct_set)}; " + (mark_fix or
                                f"fix the label or add the mark to the punctuation label ids ({PUNCT_LABEL_IDS})"))
            if label[1] not in capit_set:
                raise DataError(f"{labels_file}:{number}: label {label!r} (word {position}) has case "
                                f"{label[1]!r}, not one of {' '.join(capit_set)}; the second character is "
                                f"U (first letter upper case) or O")
            punct.append(label[0])
            capit.append(label[1])
        all_words.append(words)
        all_punct.append(punct)
        all_capit.append(capit)
    return all_words, all_punct, all_capit


def read_texts(path: str | Path) -> List[str]:
    """Texts for infer: one a line, blank lines skipped."""
    return read_input_lines(path, fix="check input_file in the spec: a text file, one text a line",
                            empty_fix="write one text to punctuate a line")


# ----------------------------------------------------------------------------- dataset_convert

def convert(source: Path, target: Path, dev_ratio: float = 0.2, punct_marks: str = STANDARD_MARKS,
            seed: int = 42) -> Dict[str, int]:
    """Write text/labels for train (and dev) and the label ids files into ``target``; returns counts per file."""
    source, target = Path(source), Path(target)
    if isinstance(dev_ratio, bool) or not isinstance(dev_ratio, (int, float)) or not 0 <= dev_ratio < 1:
        raise UsageError(f"dev_ratio {dev_ratio!r} must be a number in [0, 1): the share of lines for "
                         f"dev (0 writes train only)")
    marks = _check_marks(punct_marks)
    if not source.exists():
        raise UsageError(f"source_data_dir {source} does not exist: give a text file or a folder of *.txt files")
    if target.exists() and not target.is_dir():
        raise UsageError(f"target_data_dir {target} is a file: give a folder (it is created when missing)")
    files = [source] if source.is_file() else sorted(f for f in source.glob("*.txt") if f.is_file())
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
    splits = {"train": [lines[i] for i in sorted(order[n_dev:])]}  # each split keeps the source's order
    if n_dev:
        splits["dev"] = [lines[i] for i in sorted(order[:n_dev])]

    punct_labels = [NO_LABEL] + [m for m in STANDARD_MARKS if m in marks] + \
                   [m for m in marks if m not in STANDARD_MARKS]
    target.mkdir(parents=True, exist_ok=True)
    counts: Dict[str, int] = {}
    # stage every file first, then move them in: the target never holds half a dataset
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=target) as staging:
        stage = Path(staging)
        for split, rows in splits.items():
            with open(stage / f"text_{split}.txt", "w", encoding="utf-8", newline="\n") as text_out, \
                    open(stage / f"labels_{split}.txt", "w", encoding="utf-8", newline="\n") as labels_out:
                for words, punct, capit in rows:
                    text_out.write(" ".join(words) + "\n")
                    labels_out.write(" ".join(p + c for p, c in zip(punct, capit)) + "\n")
            counts[f"text_{split}.txt"] = counts[f"labels_{split}.txt"] = len(rows)
            counts[f"words_{split}"] = sum(len(words) for words, _, _ in rows)
        write_label_ids(stage / PUNCT_LABEL_IDS, punct_labels)
        write_label_ids(stage / CAPIT_LABEL_IDS, DEFAULT_CAPIT_LABELS)
        counts[PUNCT_LABEL_IDS] = len(punct_labels)
        counts[CAPIT_LABEL_IDS] = len(DEFAULT_CAPIT_LABELS)
        for file in stage.iterdir():
            os.replace(file, target / file.name)
    if not n_dev:  # a dev split left by an earlier convert would not match this train split
        for name in ("text_dev.txt", "labels_dev.txt"):
            if (target / name).is_file():
                (target / name).unlink()
                log.info("removed %s left by an earlier convert (dev_ratio=0 writes no dev split)", target / name)
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
    for _, line in read_lines(file):
        if line.strip():
            return "\t" in line
    return False


def _iwslt_lines(file: Path, marks: str) -> List[Line]:
    """Lines of whole sentences (at most MAX_LINE_WORDS words) from a token<TAB>label file."""
    out: List[Line] = []
    line: Line = ([], [], [])
    sentence: Line = ([], [], [])

    def end_sentence() -> None:
        if line[0] and len(line[0]) + len(sentence[0]) > MAX_LINE_WORDS:
            end_line()
        for part, more in zip(line, sentence):
            part.extend(more)
            more.clear()

    def end_line() -> None:
        if line[0]:
            out.append((list(line[0]), list(line[1]), list(line[2])))
        for part in line:
            part.clear()

    for number, text in read_lines(file):
        if not text.strip():
            end_sentence()
            end_line()
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
        words, punct, _ = sentence
        if token.lower() in IWSLT_CLITICS and words:
            words[-1] = _clean(words[-1] + token).lower()
            if mark != NO_LABEL:
                punct[-1] = mark
        else:
            word = _clean(token).lower()
            if word:
                words.append(word)
                punct.append(mark)
                sentence[2].append(NO_LABEL)
            elif words and mark != NO_LABEL:
                punct[-1] = mark
        if label in IWSLT_SENTENCE_ENDS or len(words) >= MAX_LINE_WORDS:
            end_sentence()
    end_sentence()
    end_line()
    return out
