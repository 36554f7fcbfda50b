"""Questions and their contexts as model windows, NeMo's (and BERT's) way.

A window is ``[CLS] question [SEP] context part [SEP]`` (the tokenizer's own pair layout; token type 0
for the question, 1 for the context). The question is cut to ``max_query_length`` sub-tokens; a context
longer than the room left (``max_seq_length`` less the question and the special tokens) becomes several
windows whose starts are ``doc_stride`` sub-tokens apart, until one reaches the context's end.

Training labels: the answer's first and last sub-token positions in the window when the whole answer
(the first gold answer) lies inside it, else position 0 ([CLS]): "no answer in this window", as NeMo and
Hugging Face train it. An unanswerable question labels every window 0.

Windows are not padded here: a batch pads to its longest window (core/data.py), and contexts are
tokenized once per paragraph, however many questions it has. The question_answering task reads its
questions from SQuAD files (tasks/question_answering/data.py); decoding answers is span_decoding.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

log = logging.getLogger("tao.question_answering")
NO_ANSWER = 0  # the [CLS] position


@dataclass
class Question:
    """One question with its paragraph. ``answers`` are (text, answer_start) pairs; none when unanswerable."""

    id: str
    question: str
    context: str
    answers: List[Tuple[str, int]] = field(default_factory=list)
    title: str = ""

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    @property
    def answer_texts(self) -> List[str]:
        return [text for text, _ in self.answers]


@dataclass
class Window:
    """One model input of a question. ``offsets[k]`` is the (start, end) character range in the context of the
    window's k-th context token, which sits at position ``context_start + k``."""

    question: int
    input_ids: List[int]
    token_type_ids: List[int]
    context_start: int
    offsets: List[Tuple[int, int]]
    start_position: int = NO_ANSWER
    end_position: int = NO_ANSWER

    @property
    def context_end(self) -> int:
        """The position after the window's last context token."""
        return self.context_start + len(self.offsets)

    def example(self, index: int) -> Dict[str, object]:
        """What collate_examples batches: ids, token types, the two labels and the window's index."""
        return {"input_ids": self.input_ids, "token_type_ids": self.token_type_ids,
                "start_positions": self.start_position, "end_positions": self.end_position, "window": index,
                "context_start": self.context_start, "context_end": self.context_end}


@dataclass(frozen=True)
class PairLayout:
    """Where the tokenizer puts its special tokens around a question/context pair."""

    head: Tuple[int, ...]
    middle: Tuple[int, ...]
    tail: Tuple[int, ...]
    types: Tuple[int, int, int, int, int]  # token type of head, question, middle, context, tail

    @classmethod
    def of(cls, tokenizer) -> "PairLayout":
        enc = tokenizer("x", "y")
        ids, sequence = enc["input_ids"], enc.sequence_ids(0)
        types = enc.get("token_type_ids") or [0] * len(ids)
        q, c = sequence.index(0), sequence.index(1)
        if sequence.count(0) != 1 or sequence.count(1) != 1:
            raise ValueError("the tokenizer splits 'x' or 'y' into several tokens")
        return cls(tuple(ids[:q]), tuple(ids[q + 1:c]), tuple(ids[c + 1:]),
                   (types[0] if q else 0, types[q], types[q + 1] if c > q + 1 else types[q], types[c],
                    types[c + 1] if c + 1 < len(ids) else types[c]))

    @property
    def specials(self) -> int:
        return len(self.head) + len(self.middle) + len(self.tail)


def context_spans(length: int, room: int, doc_stride: int) -> List[Tuple[int, int]]:
    """[start, end) token ranges covering a context of ``length`` tokens, ``room`` tokens each at most, starts
    ``doc_stride`` apart (NeMo's rule: the last one ends at the context's end)."""
    spans, start = [], 0
    while True:
        end = min(start + room, length)
        spans.append((start, end))
        if end == length:
            return spans
        start += min(end - start, doc_stride)


def token_span(offsets: Sequence[Tuple[int, int]], char_start: int, char_end: int) -> Tuple[int, int] | None:
    """First and last context token overlapping the characters [char_start, char_end), or None."""
    first = last = None
    for k, (a, b) in enumerate(offsets):
        if b > char_start and a < char_end and b > a:
            if first is None:
                first = k
            last = k
        elif a >= char_end:
            break
    return None if first is None else (first, last)


def make_windows(tokenizer, questions: Sequence[Question], max_seq_length: int, doc_stride: int,
                 max_query_length: int) -> List[Window]:
    """Every window of every question, in question order; labels from each question's first answer."""
    layout = PairLayout.of(tokenizer)
    contexts = list(dict.fromkeys(q.context for q in questions))
    encoded = tokenizer(contexts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    by_context = {c: (ids, [tuple(o) for o in offsets])
                  for c, ids, offsets in zip(contexts, encoded["input_ids"], encoded["offset_mapping"])}
    query_ids = tokenizer([q.question for q in questions], add_special_tokens=False, truncation=True,
                          max_length=max_query_length, verbose=False)["input_ids"]
    h, qt, m, ct, t = layout.types
    windows: List[Window] = []
    missed = 0
    for index, (question, query) in enumerate(zip(questions, query_ids)):
        ids, offsets = by_context[question.context]
        answer = None
        if question.answers:
            text, start = question.answers[0]
            answer = token_span(offsets, start, start + len(text))
            missed += answer is None
        room = max_seq_length - len(query) - layout.specials
        prefix = list(layout.head) + list(query) + list(layout.middle)
        types = [h] * len(layout.head) + [qt] * len(query) + [m] * len(layout.middle)
        for a, b in context_spans(len(ids), room, doc_stride):
            window = Window(index, prefix + list(ids[a:b]) + list(layout.tail),
                            types + [ct] * (b - a) + [t] * len(layout.tail), len(prefix), offsets[a:b])
            if answer is not None and a <= answer[0] and answer[1] < b:
                window.start_position = len(prefix) + answer[0] - a
                window.end_position = len(prefix) + answer[1] - a
            windows.append(window)
    if missed:
        log.warning("%d answers cover no token of their context (whitespace only?); their questions train as "
                    "'no answer'", missed)
    return windows


def windows_of(tokenizer, questions: Sequence[Question], config: Dict) -> List[Window]:
    """``make_windows`` with the window sizes of a QA model config (max_seq_length, doc_stride, max_query_length)."""
    return make_windows(tokenizer, questions, config["max_seq_length"], config["doc_stride"],
                        config["max_query_length"])
