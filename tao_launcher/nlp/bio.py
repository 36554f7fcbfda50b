"""BIO (IOB2) decoding: the best tag sequence that the scheme allows, instead of each word's own argmax.

Word by word, argmax can give ``O I-X`` or ``B-X I-Y``: an ``I-`` tag that continues no entity. conlleval
reads it as the start of a new entity, which is usually a false one (about 30 such tags per model on SNIPS
dev, where they cost 0.5 to 1.3 points of slot F1). ``decode`` instead returns the sequence with the
highest sum of per-word log-probabilities among those in which every ``I-X`` follows ``B-X`` or ``I-X``
(Viterbi over that rule; no learned transitions, so training is unchanged). A task uses it only when its
training tags follow the rule themselves (``choose``), so data where ``I-X`` opens an entity (IOB1)
keeps argmax; the choice is stored in the model config as ``bio_decoding``, so evaluate, infer and
infer_onnx decode as validation did.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

CONFIG_KEY = "bio_decoding"
_FORBIDDEN = -1e9


def _inside_type(tag: str) -> Optional[str]:
    """X for ``I-X``, else None."""
    return tag[2:] if tag.startswith("I-") else None


def _may_follow(previous: Optional[str], tag: str) -> bool:
    """May ``tag`` come after ``previous`` (None: at the start of a sentence) in IOB2?"""
    inside = _inside_type(tag)
    return inside is None or (previous is not None and previous[:2] in ("B-", "I-") and previous[2:] == inside)


def first_violation(sentences: Iterable[Sequence[str]]) -> Optional[Tuple[int, int]]:
    """(sentence, word) of the first ``I-X`` that continues no X entity, or None when every tag follows IOB2."""
    for number, tags in enumerate(sentences):
        for position, tag in enumerate(tags):
            if not _may_follow(tags[position - 1] if position else None, tag):
                return number, position
    return None


@lru_cache(maxsize=8)
def _transitions(labels: Tuple[str, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """Additive scores: start (labels,) and transition (previous, next), 0 where allowed, -1e9 where not."""
    start = np.array([0.0 if _may_follow(None, tag) else _FORBIDDEN for tag in labels])
    step = np.array([[0.0 if _may_follow(a, b) else _FORBIDDEN for b in labels] for a in labels])
    return start, step


def decode(logits: np.ndarray, labels: Sequence[str], bio: bool) -> List[int]:
    """Tag ids of one sentence from its per-word logits (words, labels): argmax, or with ``bio`` the best
    sequence that IOB2 allows. Labels made impossible in the logits (UNK at -1e9) stay impossible."""
    logits = np.asarray(logits, dtype=np.float64).reshape(len(logits), len(labels))
    if not bio or len(logits) == 0:
        return [int(i) for i in logits.argmax(-1)]
    log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    start, step = _transitions(tuple(labels))
    score, back = start + log_probs[0], []
    for word in log_probs[1:]:
        candidates = score[:, None] + step
        back.append(candidates.argmax(0))
        score = candidates.max(0) + word
    best = [int(score.argmax())]
    for pointers in reversed(back):
        best.append(int(pointers[best[-1]]))
    return best[::-1]


def decode_labelled(logits: np.ndarray, labelled: np.ndarray, labels: Sequence[str], bio: bool) -> np.ndarray:
    """Tag ids (batch, sequence) of a validation batch: each window's labelled positions (first sub-tokens)
    decoded as one sentence (a sentence longer than a window is decoded window by window); others stay 0."""
    out = np.zeros(labelled.shape, dtype=np.int64)
    for row, keep in enumerate(labelled):
        positions = np.flatnonzero(keep)
        if len(positions):
            out[row, positions] = decode(logits[row, positions], labels, bio)
    return out


def decode_words(word_logits: Sequence[Sequence], labels: Sequence[str], config: Dict,
                 mask: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> List[List[str]]:
    """Per sentence, the tag of every word from a per-token head's word rows (``nlp.tokens.predict_words``),
    decoded as the model config says (``CONFIG_KEY``). ``mask`` may first make labels impossible in a
    sentence's (words, labels) logits (intent_slot's UNK)."""
    out = []
    for sentence in word_logits:
        logits = np.asarray(sentence, dtype=np.float32).reshape(len(sentence), len(labels))
        ids = decode(mask(logits) if mask else logits, labels, config.get(CONFIG_KEY, False))
        out.append([labels[i] for i in ids])
    return out


def validation_counts(logits, gold, labels: Sequence[str], bio: bool):
    """What a validation step adds up for a per-token head, with its tags decoded as evaluate decodes them:
    [correct, predicted, gold] spans (conlleval, ``core.metrics.span_counts``) and [right, labelled] words,
    as one long tensor on the CPU. ``logits`` (batch, sequence, labels) and ``gold`` (batch, sequence; the
    positions off first sub-tokens ``IGNORE_INDEX``) are torch tensors."""
    import torch

    from tao_launcher.core.data import IGNORE_INDEX
    from tao_launcher.core.metrics import span_counts

    gold = gold.cpu()
    labelled = gold != IGNORE_INDEX
    pred = torch.from_numpy(decode_labelled(logits.float().cpu().numpy(), labelled.numpy(), labels, bio))
    words = torch.tensor([int(((pred == gold) & labelled).sum()), int(labelled.sum())])
    return torch.cat([span_counts(pred, gold, labels), words])


def choose(requested: bool, train_tags: Iterable[Sequence[str]], labels: Sequence[str], log) -> bool:
    """The model's ``bio_decoding``: requested and safe for these training tags; logs the choice."""
    if not requested:
        log.info("tag decoding: argmax per word (model.bio_decoding=false)")
        return False
    if not any(_inside_type(tag) for tag in labels):
        return False  # no I- tags: nothing to constrain
    violation = first_violation(train_tags)
    if violation is not None:
        log.info("tag decoding: argmax per word, since the training tags do not follow BIO (sentence %d, word %d "
                 "is an I- tag that continues no entity)", violation[0] + 1, violation[1] + 1)
        return False
    log.info("tag decoding: the best BIO-valid tag sequence (model.bio_decoding)")
    return True
