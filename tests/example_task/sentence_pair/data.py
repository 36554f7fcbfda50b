"""The reader: ``first<TAB>second[<TAB>label]`` a line, label 0 or 1; a bad line is a DataError naming FILE:LINE."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from tao_launcher.core.textfiles import SUBSET_SEED, subset
from tao_launcher.errors import DataError

Pair = Tuple[str, str]


def read_pairs(path: str, *, labelled: bool = True, num_samples: int = -1,
               seed: int = SUBSET_SEED) -> Tuple[List[Pair], List[int]]:
    pairs, labels = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != (3 if labelled else 2) or (labelled and fields[2] not in ("0", "1")):
            raise DataError(f"{path}:{number}: expected first<TAB>second" + ("<TAB>0 or 1" if labelled else "")
                            + f", got {line[:60]!r}: fix or remove the line")
        pairs.append((fields[0], fields[1]))
        labels.append(int(fields[2]) if labelled else 0)
    drawn = subset(list(zip(pairs, labels)), num_samples, source=path, seed=seed,
                   labels=lambda example: [str(example[1])] if labelled else [])
    return [pair for pair, _ in drawn], [label for _, label in drawn]


def encode(tokenizer, pairs: List[Pair], max_seq_length: int = 128) -> List[dict]:
    """Token ids of both sentences in one window, [SEP] between them and their token types."""
    encoded = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=max_seq_length)
    return [{"input_ids": ids, "token_type_ids": types}
            for ids, types in zip(encoded["input_ids"], encoded["token_type_ids"])]


def read_lines(path: str) -> List[str]:
    return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def split_pair(item: str) -> Pair:
    first, tab, second = item.partition("\t")
    if not tab:
        raise DataError(f"{item[:60]!r} is not a pair: write first<TAB>second")
    return first, second
