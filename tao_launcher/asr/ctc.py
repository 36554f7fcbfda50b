"""CTC decoding and the error rates of speech recognition.

The decoder's last class is the CTC blank (NeMo's convention: ``num_classes = len(vocabulary) + 1``).
Greedy decoding takes the best class per frame, merges repeats, then drops blanks. WER and CER are
NeMo's ``word_error_rate``: the summed Levenshtein distance over all utterances divided by the summed
length of the references (words, or characters for CER), so long utterances weigh more.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np


def greedy_decode(log_probs, lengths, blank: int) -> List[List[int]]:
    """Token ids per utterance from (batch, time, classes) scores (torch or numpy) and valid frame counts."""
    best = np.asarray(log_probs.argmax(-1) if hasattr(log_probs, "argmax") else log_probs)
    ids = []
    for row, length in zip(best, np.asarray(lengths).tolist()):
        frames = row[:int(length)]
        if len(frames) == 0:
            ids.append([])
            continue
        keep = np.ones(len(frames), dtype=bool)
        keep[1:] = frames[1:] != frames[:-1]
        ids.append([int(t) for t in frames[keep] if t != blank])
    return ids


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def error_counts(hypotheses: Sequence[str], references: Sequence[str], use_cer: bool = False) -> tuple:
    """(summed edit distance, summed reference length) in words, or characters with ``use_cer``."""
    errors = total = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = (list(hyp), list(ref)) if use_cer else (hyp.split(), ref.split())
        errors += edit_distance(r, h)
        total += len(r)
    return errors, total


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str], use_cer: bool = False) -> float:
    """NeMo's WER (or CER): errors over reference length, summed over the utterances; inf for empty references."""
    errors, total = error_counts(hypotheses, references, use_cer)
    return errors / total if total else float("inf")
