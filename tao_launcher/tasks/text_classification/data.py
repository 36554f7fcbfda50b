"""text_classification data: the training file format, and dataset_convert for SST-2 and IMDB.

Training format (what train, finetune and evaluate read; what dataset_convert writes)::

    sentence<TAB>label          one example a line, label an integer id 0..num_classes-1
                                an optional first line 'sentence<TAB>label' is skipped
    labels.txt                  class names, line N names label id N

Sources for dataset_convert:

- ``sst2``: GLUE SST-2 folder with ``train.tsv`` and ``dev.tsv`` (header ``sentence<TAB>label``);
  ``test.tsv`` (``index<TAB>sentence``, unlabeled) becomes ``test.txt``, one sentence a line, for infer.
- ``imdb``: the ``aclImdb`` folder, a folder containing it, or its ``.tar.gz``:
  ``{train,test}/{pos,neg}/<id>_<rating>.txt``; train -> train.tsv, test -> dev.tsv.
"""

from __future__ import annotations

import logging
import random
import re
import tarfile
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

from tao_launcher.core.convert import check_not_converted, staged_into, written
from tao_launcher.core.progress import track
from tao_launcher.core.textfiles import SUBSET_SEED, check_file, input_text, read_lines, subset
from tao_launcher.errors import DataError, UsageError

log = logging.getLogger("tao.text_classification")
HEADER = ("sentence", "label")
SENTIMENT_LABELS = ["negative", "positive"]
# how to fix a label out of range; finetune names the model's label set instead
LABEL_RANGE_FIX = "fix the line or set model.dataset.num_classes"


def read_examples(path: str | Path, num_samples: int = -1, num_classes: Optional[int] = None,
                  range_fix: str = LABEL_RANGE_FIX, seed: int = SUBSET_SEED,
                  ) -> Tuple[List[str], List[int]]:
    """Read ``sentence<TAB>label`` lines; a bad line is a DataError naming file:line and the fix.
    ``num_samples`` > 0 draws that many (``textfiles.subset``, with ``seed``)."""
    path = Path(path)
    check_file(path, "data file", "check the file_path in the spec (dataset_convert writes train.tsv and dev.tsv)")
    sentences: List[str] = []
    labels: List[int] = []
    for number, line in read_lines(path):
        if not line.strip():
            continue
        sentence, tab, label = line.rpartition("\t")
        if number == 1 and (sentence.strip().lower(), label.strip().lower()) == HEADER:
            continue
        if not tab or not sentence.strip():
            raise DataError(f"{path}:{number}: expected 'sentence<TAB>label', got {line[:60]!r}; "
                            f"separate the sentence and its label with one TAB")
        try:
            value = int(label)
        except ValueError:
            raise DataError(f"{path}:{number}: label {label[:20]!r} is not an integer id; "
                            f"labels must be 0..num_classes-1 (dataset_convert writes them)") from None
        if value < 0 or (num_classes is not None and value >= num_classes):
            scope = f"num_classes={num_classes}" if range_fix == LABEL_RANGE_FIX else f"the model's {num_classes} classes"
            raise DataError(f"{path}:{number}: label {value} is out of range for {scope}; "
                            f"labels must be 0..{(num_classes or 1) - 1}: {range_fix}")
        sentences.append(sentence.strip())
        labels.append(value)
    if not sentences:
        raise DataError(f"{path} holds no examples: expected 'sentence<TAB>label' lines")
    drawn = subset(list(zip(sentences, labels)), num_samples, source=path, seed=seed,
                   labels=lambda example: [str(example[1])], what="class ids", unit="sentences")
    return [sentence for sentence, _ in drawn], [label for _, label in drawn]


def read_sentences(path: str | Path) -> List[str]:
    """Sentences for infer: one a line; of a tsv, the first column; a 'sentence' header is skipped."""
    path = Path(path)
    check_file(path, "input file", "check input_file in the spec")
    out = []
    for number, line in read_lines(path):
        text = input_text(path, number, line.split("\t")[0])
        if number == 1 and text and text.lower() in ("sentence", "text"):
            continue
        if text:
            out.append(text)
    return out


def read_label_names(path: Optional[str], num_classes: Optional[int]) -> List[str]:
    """Class names from class_labels_file, or '0'..'N-1' when there is none.

    ``num_classes`` None: as many classes as the file names (TrainSpec.problems makes sure there is one)."""
    if not path:
        return [str(i) for i in range(num_classes)]
    file = Path(path)
    check_file(file, "class labels file", "check model.class_labels.class_labels_file")
    names = [line.strip() for _, line in read_lines(file) if line.strip()]
    if num_classes is None and len(names) < 2:
        raise DataError(f"{file} names {len(names)} class(es): a classifier needs at least 2, one name a line")
    if num_classes is not None and len(names) != num_classes:
        raise DataError(f"{file} names {len(names)} classes but model.dataset.num_classes is {num_classes}: "
                        f"make them agree")
    return names


# ----------------------------------------------------------------------------- dataset_convert

def convert(dataset_name: str, source: Path, target: Path, overwrite: bool = False) -> dict:
    """Write train.tsv, dev.tsv and labels.txt into ``target``; returns counts per file. ``overwrite``: the
    user lets it replace files of those names that no dataset_convert wrote (core/convert.py)."""
    if not source.exists():
        raise UsageError(f"source_data_dir {source} does not exist: download the dataset there first")
    converter = {"sst2": _convert_sst2, "imdb": _convert_imdb}[dataset_name]
    names = ["train.tsv", "dev.tsv", "labels.txt"]
    if (dataset_name == "sst2" and (source / "test.tsv").is_file()) or "test.txt" in written(target):
        names.append("test.txt")  # written now, or an earlier convert's that this one must not leave behind
    with staged_into(target, names, overwrite=overwrite) as stage:  # a bad source line leaves nothing half-written
        counts = converter(source, stage)
        (stage / "labels.txt").write_text("\n".join(SENTIMENT_LABELS) + "\n")
    return counts


def _write_tsv(path: Path, rows: Iterable[Tuple[str, int]]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for sentence, label in rows:
            out.write(f"{sentence}\t{label}\n")
            count += 1
    return count


def _convert_sst2(source: Path, target: Path) -> dict:
    counts = {}
    for name in ("train.tsv", "dev.tsv"):
        file = source / name
        if not file.is_file():
            raise UsageError(f"{file} does not exist: source_data_dir must be the GLUE SST-2 folder "
                             f"with train.tsv and dev.tsv")
        check_not_converted(file, "source file")  # a target equal to the source holds this convert's train.tsv
    for name in ("train.tsv", "dev.tsv"):
        counts[name] = _write_tsv(target / name, _sst2_rows(source / name))
    test = source / "test.tsv"
    if test.is_file():
        sentences = [line.split("\t", 1)[1].strip() for number, line in read_lines(test) if number > 1 and "\t" in line]
        (target / "test.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
        counts["test.txt"] = len(sentences)
    return counts


def _sst2_rows(file: Path) -> Iterator[Tuple[str, int]]:
    lines = read_lines(file)
    header = next(lines, (1, ""))[1].split("\t")
    if header[:2] != list(HEADER):
        raise DataError(f"{file}:1: expected the SST-2 header 'sentence<TAB>label', got {'<TAB>'.join(header)!r}")
    for number, line in lines:
        parts = line.split("\t")
        if not line.strip():
            continue
        if len(parts) != 2 or parts[1].strip() not in ("0", "1") or not parts[0].strip():
            raise DataError(f"{file}:{number}: expected 'sentence<TAB>0 or 1', got {line.strip()[:60]!r}; "
                            f"fix or delete the line")
        yield parts[0].strip(), int(parts[1])


_TAGS = re.compile(r"<br\s*/?>|[\t\r\n]+")


def _convert_imdb(source: Path, target: Path) -> dict:
    reviews = _imdb_reviews(source)
    counts = {}
    for split, name in (("train", "train.tsv"), ("test", "dev.tsv")):
        rows = [(text, label) for s, label, text in reviews if s == split]
        if not rows:
            raise UsageError(f"no {split}/pos or {split}/neg reviews under {source}: source_data_dir must be "
                             f"the aclImdb folder or aclImdb_v1.tar.gz")
        counts[name] = _write_tsv(target / name, rows)
    return counts


def _imdb_reviews(source: Path) -> List[Tuple[str, int, str]]:
    """(split, label, text) for every review, from a folder or a tarball."""
    pattern = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]+\.txt$")
    reviews = []

    def add(name: str, raw: bytes) -> None:
        match = pattern.search(name)
        if match:
            text = " ".join(_TAGS.sub(" ", raw.decode("utf-8", errors="replace")).split())
            reviews.append((match.group(1), 1 if match.group(2) == "pos" else 0, text))

    tarballs = [source] if source.is_file() else sorted(source.glob("*.tar.gz"))
    if source.is_dir() and any(source.rglob("train/pos/*.txt")):
        for file in track(sorted(source.rglob("*.txt")), desc=f"reading {source.name}", unit="file"):
            add(file.as_posix(), file.read_bytes())
    else:
        for tarball in tarballs:
            try:
                with tarfile.open(tarball, "r:*") as tar:
                    for member in track(tar, desc=f"reading {tarball.name}", unit="file"):
                        if member.isfile():
                            add(member.name, tar.extractfile(member).read())
            except tarfile.TarError as err:
                raise DataError(f"cannot read {tarball}: {err}; download the IMDB archive again") from None
    reviews.sort()
    random.Random(0).shuffle(reviews)  # the archive groups by label; num_samples must see both
    return reviews
