"""The official SQuAD v2.0 scoring (evaluate-v2.0.py), which also scores v1.1 files: exact match and F1.

- An answer is normalised before comparing: lower-cased, punctuation removed, the articles a/an/the
  removed, whitespace collapsed.
- A question scores the best over its gold answers; gold answers that normalise to nothing are dropped,
  and a question with none (unanswerable) has the one gold answer "": only an empty prediction
  ("no answer") scores 1 there.
- F1 is over the normalised words (bag of words); if either side is empty, F1 is 1 when both are.
- Totals are percentages (0..100), as the official script prints them, overall and split into
  HasAns (questions with answers) and NoAns (without).

No torch, no numpy: the benchmark and the tests use it as it is.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Dict, List, Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the official normalize_answer)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> List[str]:
    return normalize_answer(text).split() if text else []


def exact_score(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    gold_tokens, pred_tokens = answer_tokens(gold), answer_tokens(prediction)
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((collections.Counter(gold_tokens) & collections.Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_texts(answers: Sequence[str]) -> List[str]:
    """The gold answers a question is scored against: those that normalise to something, else [""]."""
    return [a for a in answers if normalize_answer(a)] or [""]


def question_scores(answers: Sequence[str], prediction: str) -> tuple:
    """(exact, f1) of one prediction: the best over the gold answers."""
    golds = gold_texts(answers)
    return max(exact_score(g, prediction) for g in golds), max(f1_score(g, prediction) for g in golds)


def squad_scores(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> Dict[str, float]:
    """Exact match and F1 in percent, overall and for HasAns / NoAns, from ``{id: gold answer texts}`` and
    ``{id: predicted text}`` ("" is "no answer"). A question without a prediction scores as "no answer"."""
    totals = {"": [0, 0.0, 0], "HasAns_": [0, 0.0, 0], "NoAns_": [0, 0.0, 0]}
    for qid, answers in gold.items():
        exact, f1 = question_scores(answers, predictions.get(qid, ""))
        for part in ("", "HasAns_" if answers else "NoAns_"):
            totals[part][0] += exact
            totals[part][1] += f1
            totals[part][2] += 1
    out: Dict[str, float] = {}
    for part, (exact, f1, count) in totals.items():
        if count or not part:
            out[f"{part}exact"] = 100.0 * exact / count if count else 0.0
            out[f"{part}f1"] = 100.0 * f1 / count if count else 0.0
            out[f"{part}total"] = count
    return out


def format_scores(scores: Dict[str, float], file: str) -> str:
    """The scores as a table: all questions, then HasAns and NoAns where the file has such questions."""
    lines = [f"SQuAD scores (official v2.0 rules, percent) on {file}:", f"{'':8}{'exact':>8}{'f1':>8}{'questions':>11}"]
    for part, name in (("", "all"), ("HasAns_", "HasAns"), ("NoAns_", "NoAns")):
        if f"{part}total" in scores:
            lines.append(f"{name:8}{scores[part + 'exact']:8.2f}{scores[part + 'f1']:8.2f}{scores[part + 'total']:11d}")
    return "\n".join(lines)
