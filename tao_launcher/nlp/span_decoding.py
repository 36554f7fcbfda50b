"""From start/end logits to an answer: n-best spans over every window of a question, then the null answer.

For each window of a question: the ``n_best_size`` best start and end positions inside the context; each
pair with start <= end and at most ``max_answer_length`` sub-tokens is a candidate span scored
``start_logit + end_logit``; its text is the context's characters from the start token's first to the
end token's last (so the answer keeps the context's case, accents and spacing). The candidates of all
windows are ranked and the best ``n_best_size`` kept.

SQuAD v2.0: the null ("no answer") score of a window is its [CLS] start + end logit; a question's null
score is the lowest over its windows (the window that most believes there is an answer). The answer is
"" (no answer) when ``null score - best span score > null_score_diff_threshold``. Probabilities are a
softmax over the kept candidates' scores (and the null score), as Hugging Face's run_qa reports them.
Numpy only (the torch and onnxruntime runners give numpy arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from tao_launcher.nlp.qa_windows import NO_ANSWER, Window


@dataclass
class Prediction:
    """A question's answer ("" = no answer), its probability, the null-minus-best score difference
    (None for SQuAD v1.1) and the n-best list (text, probability, start_logit, end_logit)."""

    answer: str
    probability: float
    null_score_diff: Optional[float]
    nbest: List[Dict[str, object]] = field(default_factory=list)


def window_candidates(start_logits: np.ndarray, end_logits: np.ndarray, window: Window, context: str,
                      n_best_size: int, max_answer_length: int) -> List[Dict[str, object]]:
    """The spans of one window (see above), best first."""
    c0, c1 = window.context_start, window.context_end
    if c1 == c0:
        return []
    starts = np.asarray(start_logits[c0:c1], dtype=np.float64)
    ends = np.asarray(end_logits[c0:c1], dtype=np.float64)
    top_starts = np.argsort(-starts, kind="stable")[:n_best_size]
    top_ends = np.argsort(-ends, kind="stable")[:n_best_size]
    out = []
    for i in top_starts.tolist():
        for j in top_ends.tolist():
            if j < i or j - i + 1 > max_answer_length:
                continue
            a, b = window.offsets[i][0], window.offsets[j][1]
            out.append({"text": context[a:b], "start_logit": float(starts[i]), "end_logit": float(ends[j]),
                        "score": float(starts[i] + ends[j]), "offsets": [a, b]})
    out.sort(key=lambda c: -c["score"])
    return out


def decode(outputs: Sequence[np.ndarray], windows: Sequence[Window], context: str, *, n_best_size: int,
           max_answer_length: int, version_2_with_negative: bool, null_score_diff_threshold: float) -> Prediction:
    """One question's prediction from its windows and their logits ((length, 2) arrays: start, end)."""
    candidates: List[Dict[str, object]] = []
    null = None
    for logits, window in zip(outputs, windows):
        start_logits, end_logits = logits[:, 0], logits[:, 1]
        score = float(start_logits[NO_ANSWER] + end_logits[NO_ANSWER])
        if null is None or score < null["score"]:
            null = {"text": "", "start_logit": float(start_logits[NO_ANSWER]),
                    "end_logit": float(end_logits[NO_ANSWER]), "score": score, "offsets": None}
        candidates += window_candidates(start_logits, end_logits, window, context, n_best_size, max_answer_length)
    candidates.sort(key=lambda c: -c["score"])
    nbest = candidates[:n_best_size]
    if version_2_with_negative and null is not None:
        nbest.append(null)
        nbest.sort(key=lambda c: -c["score"])
    if nbest:
        scores = np.array([c["score"] for c in nbest])
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        for c, p in zip(nbest, probs.tolist()):
            c["probability"] = p
    best = next((c for c in nbest if c["offsets"] is not None), None)
    diff = None
    chosen = best
    if version_2_with_negative and null is not None:
        diff = null["score"] - best["score"] if best else None
        if best is None or diff > null_score_diff_threshold:
            chosen = null
    listed = [{"text": c["text"], "probability": c["probability"], "start_logit": c["start_logit"],
               "end_logit": c["end_logit"]} for c in nbest]
    if chosen is None:  # v1.1 and no span fits in any window (a context of a few tokens): no answer
        return Prediction("", 0.0, None, listed)
    return Prediction(chosen["text"], chosen["probability"], None if diff is None else float(diff), listed)


def decode_all(outputs: Sequence[np.ndarray], windows: Sequence[Window], contexts: Sequence[str],
               **settings) -> List[Prediction]:
    """Predictions of every question, from the logits of every window (in ``windows`` order)."""
    grouped: Dict[int, List[int]] = {}
    for k, window in enumerate(windows):
        grouped.setdefault(window.question, []).append(k)
    return [decode([outputs[k] for k in grouped.get(i, [])], [windows[k] for k in grouped.get(i, [])],
                   context, **settings) for i, context in enumerate(contexts)]


def decoding_settings(decoding, version_2_with_negative: bool) -> Dict[str, object]:
    """``decode``'s settings: a spec's ``decoding`` section (n_best_size, max_answer_length,
    null_score_diff_threshold) and the model's SQuAD version."""
    return {"n_best_size": decoding.n_best_size, "max_answer_length": decoding.max_answer_length,
            "null_score_diff_threshold": decoding.null_score_diff_threshold,
            "version_2_with_negative": version_2_with_negative}


def prediction_files(ids: Sequence[str], predictions: Sequence[Prediction], version_2_with_negative: bool
                     ) -> Dict[str, Dict[str, object]]:
    """The files Hugging Face's run_qa writes, by name without ``.json``: predictions (id -> answer, "" for no
    answer), nbest_predictions (id -> the n-best list) and, for SQuAD v2.0, null_odds (id -> null score minus
    best span score)."""
    pairs = list(zip(ids, predictions))
    files = {"predictions": {i: p.answer for i, p in pairs}, "nbest_predictions": {i: p.nbest for i, p in pairs}}
    if version_2_with_negative:
        files["null_odds"] = {i: p.null_score_diff for i, p in pairs}
    return files
