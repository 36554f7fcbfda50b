"""Words to sub-token windows, for the tasks that label words (NER, punctuation, slots).

A sentence is a list of words. Each word becomes its sub-tokens; the word's label sits on
its first sub-token and the other sub-tokens carry ``IGNORE_INDEX`` (NeMo's and HF's rule).
A sentence longer than ``max_seq_length`` is never cut: it is split at word boundaries into
windows that together cover every word. Training windows do not overlap (each word is trained
once); inference windows overlap by ``margin`` words on each side, and each word's prediction
comes from the window in which it has that context (NeMo's ``step``/``margin`` for punctuation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from tao_launcher.core.data import IGNORE_INDEX


@dataclass
class Window:
    """One model input: ``input_ids`` with [CLS]/[SEP]; ``words`` the (position, word index) pairs it predicts."""

    sentence: int
    input_ids: List[int]
    words: List[Tuple[int, int]] = field(default_factory=list)

    def example(self, labels: Optional[Dict[str, Sequence[int]]] = None) -> Dict[str, List[int]]:
        """The training example: ``input_ids`` and, per name, a label list with the word labels in place."""
        out: Dict[str, List[int]] = {"input_ids": self.input_ids}
        for name, word_labels in (labels or {}).items():
            row = [IGNORE_INDEX] * len(self.input_ids)
            for position, word in self.words:
                row[position] = word_labels[word]
            out[name] = row
        return out


def subtokens(tokenizer, sentences: Sequence[Sequence[str]]) -> List[List[List[int]]]:
    """Sub-token ids per word per sentence; a word the tokenizer drops entirely becomes [UNK]."""
    # verbose=False: a long paragraph is split into windows later, so "longer than the maximum" is no warning here
    encoded = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False,
                        verbose=False)
    out = []
    for i, sentence in enumerate(sentences):
        pieces: List[List[int]] = [[] for _ in sentence]
        for token, word in zip(encoded["input_ids"][i], encoded.word_ids(i)):
            if word is not None:
                pieces[word].append(token)
        out.append([p or [tokenizer.unk_token_id] for p in pieces])
    return out


def plan_windows(word_lengths: Sequence[int], capacity: int, margin: int = 0) -> List[Tuple[int, int, int, int]]:
    """(start, end, keep_start, keep_end) word ranges; the keep ranges tile the sentence exactly once.

    A window holds whole words up to ``capacity`` sub-tokens (a single longer word is cut to fit,
    its label is kept). Windows after the first start ``margin`` words before their keep range.
    """
    n = len(word_lengths)
    windows = []
    start, keep_start = 0, 0
    while True:
        end, used = start, 0
        while end < n and (end == start or used + word_lengths[end] <= capacity):
            used += word_lengths[end]
            end += 1
        if end >= n:
            windows.append((start, n, keep_start, n))
            return windows
        keep_end = max(keep_start + 1, end - margin)
        windows.append((start, end, keep_start, keep_end))
        start, keep_start = max(start + 1, keep_end - margin), keep_end
        # less left context where it would crowd out the window's own first word
        while start < keep_start and sum(word_lengths[start:keep_start + 1]) > capacity:
            start += 1


def word_windows(tokenizer, sentences: Sequence[Sequence[str]], max_seq_length: int,
                 margin: int = 0) -> List[Window]:
    """Windows for every sentence, in sentence order; see the module docstring."""
    capacity = max(1, max_seq_length - 2)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    windows = []
    for index, pieces in enumerate(subtokens(tokenizer, sentences)):
        if not pieces:
            continue
        for start, end, keep_start, keep_end in plan_windows([len(p) for p in pieces], capacity, margin):
            ids, words = [cls], []
            for word in range(start, end):
                if keep_start <= word < keep_end:
                    words.append((len(ids), word))
                ids.extend(pieces[word])
            windows.append(Window(index, ids[:capacity + 1] + [sep], words))
    return windows


def word_predictions(windows: Sequence[Window], outputs: Sequence[Sequence], num_sentences: int,
                     output: int = 0) -> List[List]:
    """Per sentence, per word, the row of model output ``output`` at the word's first sub-token."""
    per_sentence: List[Dict[int, object]] = [dict() for _ in range(num_sentences)]
    for window, result in zip(windows, outputs):
        for position, word in window.words:
            per_sentence[window.sentence][word] = result[output][position]
    return [[words[w] for w in sorted(words)] for words in per_sentence]


def labelled_examples(tokenizer, sentences: Sequence[Sequence[str]], labels: Dict[str, Sequence[Sequence[int]]],
                      max_seq_length: int, sentence_labels: Optional[Dict[str, Sequence[int]]] = None,
                      ) -> List[Dict[str, List[int]]]:
    """Training examples: non-overlapping windows, each word's label ids (per head) on its first sub-token,
    and each sentence label (one int a sentence, per name: an intent) on every window of its sentence."""
    examples = []
    for window in word_windows(tokenizer, sentences, max_seq_length):
        example = window.example({name: per_sentence[window.sentence] for name, per_sentence in labels.items()})
        for name, per_sentence in (sentence_labels or {}).items():
            example[name] = per_sentence[window.sentence]
        examples.append(example)
    return examples


def predict_words(runner, tokenizer, sentences: Sequence[Sequence[str]], max_seq_length: int, batch_size: int,
                  margin: int = 0) -> List[List[List]]:
    """Per model output, per sentence: for a per-token output, per word, the output row at the word's first
    sub-token; for a per-sentence output (an intent), the mean of its rows over the sentence's windows.

    The same function serves the torch and the onnxruntime runner, so infer and infer_onnx agree.
    """
    from tao_launcher.nlp.inference import run_batched

    windows = word_windows(tokenizer, sentences, max_seq_length, margin)
    outputs = run_batched(runner, [{"input_ids": w.input_ids} for w in windows], batch_size,
                          tokenizer.pad_token_id or 0)
    n_outputs = len(outputs[0]) if outputs else 0
    return [word_predictions(windows, outputs, len(sentences), k) if outputs[0][k].ndim >= 2
            else sentence_predictions(windows, outputs, len(sentences), k) for k in range(n_outputs)]


def sentence_predictions(windows: Sequence[Window], outputs: Sequence[Sequence], num_sentences: int,
                         output: int) -> List:
    """Per sentence, the mean of per-window output ``output`` over the windows of that sentence."""
    sums: List = [None] * num_sentences
    counts = [0] * num_sentences
    for window, result in zip(windows, outputs):
        row = result[output]
        sums[window.sentence] = row.copy() if sums[window.sentence] is None else sums[window.sentence] + row
        counts[window.sentence] += 1
    return [total / count for total, count in zip(sums, counts)]


# ----------------------------------------------------------------------------- infer over texts

INFER_MARGIN = 16  # words of context on each side where infer splits a long text into windows


def predict_texts(model, texts: Sequence[str], batch_size: int, margin: int = INFER_MARGIN) -> List[List[List]]:
    """``predict_words`` of a loaded model (core/predict.py ``Loaded``: runner, tokenizer, model config) over
    texts whose words are separated by spaces."""
    return predict_words(model.runner, model.processor, [text.split() for text in texts],
                         model.config["max_seq_length"], batch_size, margin)
