"""nlp/tokens.py (words to sub-token windows) and core/data.py batching, with the real packaged tokenizer."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tao_launcher.core.data import IGNORE_INDEX, collate_examples
from tao_launcher.core.module import BucketedDataModule
from tao_launcher.core.encoders import resolve_encoder
from tao_launcher.nlp.encoder import load_tokenizer
from tao_launcher.nlp.tokens import (labelled_examples, plan_windows, predict_words, subtokens, word_predictions,
                                     word_windows)

# words with a known number of sub-tokens in the all-minilm-l6-v2 (BERT uncased) vocabulary
ONE = ["the", "city", "hello", "world", "unbelievable", "a", "of", "run"]
THREE = ["qwerty", "bratwurst", "photosynthesis"]
SIX = "antidisestablishment"  # anti ##dis ##est ##ab ##lish ##ment


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_encoder("all-minilm-l6-v2"))


@pytest.fixture(scope="module")
def vocabulary(tokenizer):
    """Words of 1 to 6 sub-tokens, and their counts."""
    words = ONE + THREE + [SIX, "xylophonist", "zzyzx", "2024", "Leicestershire", "1996-08-30", "don't", "U.N."]
    return {w: len(p) for w, p in zip(words, subtokens(tokenizer, [words])[0])}


def test_the_vocabulary_splits_as_these_tests_assume(tokenizer, vocabulary):
    assert all(vocabulary[w] == 1 for w in ONE) and all(vocabulary[w] == 3 for w in THREE)
    assert vocabulary[SIX] == 6 and max(vocabulary.values()) >= 6
    assert subtokens(tokenizer, [["\u200b", "ok"]]) == [[[tokenizer.unk_token_id], tokenizer.convert_tokens_to_ids(["ok"])]]


# ----------------------------------------------------------------------------- plan_windows

def _check_plan(lengths, capacity, margin, plan):
    n = len(lengths)
    kept = [w for _, _, ks, ke in plan for w in range(ks, ke)]
    assert kept == list(range(n)), (lengths, capacity, margin, plan)  # every word kept once, in order
    for i, (start, end, keep_start, keep_end) in enumerate(plan):
        assert 0 <= start <= keep_start < keep_end <= end <= n, plan[i]
        # whole words that fit, or one word alone (cut later to the capacity)
        assert sum(lengths[start:end]) <= capacity or end - start == 1, (lengths, capacity, plan[i])
        if i:
            assert start > plan[i - 1][0]  # progress
        if margin == 0:
            assert (start, end) == (keep_start, keep_end)  # training windows do not overlap
        else:
            assert keep_start - start <= margin
            if i < len(plan) - 1:
                assert end - keep_end <= margin


def test_plan_windows_without_margin_tiles_every_sentence():
    rng = random.Random(1234)
    for _ in range(3000):
        lengths = [rng.choice((1, 1, 1, 2, 2, 3, 5, 9)) for _ in range(rng.randint(1, 60))]
        capacity = rng.randint(1, 40)
        _check_plan(lengths, capacity, 0, plan_windows(lengths, capacity, 0))


def test_plan_windows_with_margin_tiles_every_sentence_when_the_context_fits():
    """The realistic regime: the margin's words (and the next one) always fit in a window."""
    rng = random.Random(99)
    for _ in range(3000):
        longest = rng.randint(1, 4)
        lengths = [rng.randint(1, longest) for _ in range(rng.randint(1, 80))]
        margin = rng.randint(1, 8)
        capacity = rng.randint((margin + 1) * longest, 60)
        plan = plan_windows(lengths, capacity, margin)
        _check_plan(lengths, capacity, margin, plan)
        if sum(lengths) > capacity and capacity >= (2 * margin + 2) * longest:
            assert len(plan) > 1 and any(start < keep_start for start, _, keep_start, _ in plan[1:])  # overlap


def test_plan_windows_with_margin_tiles_every_sentence_for_any_lengths():
    """Also where the margin's words crowd out the next word (long words after short ones): less left context."""
    rng = random.Random(7)
    for _ in range(3000):
        lengths = [rng.randint(1, 6) for _ in range(rng.randint(1, 40))]
        capacity, margin = rng.randint(1, 14), rng.randint(1, 6)
        _check_plan(lengths, capacity, margin, plan_windows(lengths, capacity, margin))


def test_plan_windows_small_cases():
    assert plan_windows([1, 1, 1], 10) == [(0, 3, 0, 3)]
    assert plan_windows([1] * 5, 2) == [(0, 2, 0, 2), (2, 4, 2, 4), (4, 5, 4, 5)]
    assert plan_windows([7, 1, 1], 3) == [(0, 1, 0, 1), (1, 3, 1, 3)]  # a word longer than the capacity: alone
    assert plan_windows([1] * 10, 4, margin=1) == [(0, 4, 0, 3), (2, 6, 3, 5), (4, 8, 5, 7), (6, 10, 7, 10)]


# ----------------------------------------------------------------------------- word_windows

def _random_sentences(rng, vocabulary, count, longest):
    words = list(vocabulary)
    return [[rng.choice(words) for _ in range(rng.randint(1, longest))] for _ in range(count)]


@pytest.mark.parametrize("max_seq_length", [3, 4, 8, 16, 128])
@pytest.mark.parametrize("margin", [0, 3])
def test_windows_never_exceed_max_seq_length_and_predict_every_word_once(tokenizer, vocabulary, max_seq_length,
                                                                         margin):
    rng = random.Random(max_seq_length * 10 + margin)
    sentences = _random_sentences(rng, vocabulary, 40, 90)
    pieces = subtokens(tokenizer, sentences)
    windows = word_windows(tokenizer, sentences, max_seq_length, margin)
    assert sorted({w.sentence for w in windows}) == list(range(len(sentences)))
    for window in windows:
        assert len(window.input_ids) <= max_seq_length
        assert window.input_ids[0] == tokenizer.cls_token_id and window.input_ids[-1] == tokenizer.sep_token_id
        for position, word in window.words:  # each kept word's first sub-token sits at its position
            assert window.input_ids[position] == pieces[window.sentence][word][0]
    for s, sentence in enumerate(sentences):
        kept = [word for w in windows if w.sentence == s for _, word in w.words]
        assert kept == list(range(len(sentence)))
    if margin == 0:  # training windows: every sub-token of every word once (words cut only when alone)
        for s, sentence in enumerate(sentences):
            ids = [t for w in windows if w.sentence == s for t in w.input_ids[1:-1]]
            if max_seq_length - 2 >= max(map(len, pieces[s])):
                assert ids == [t for p in pieces[s] for t in p]


def test_a_word_longer_than_the_window_is_cut_but_keeps_its_label(tokenizer):
    sentence = ["the", SIX, "city"]
    examples = labelled_examples(tokenizer, [sentence], {"labels": [[4, 5, 6]]}, max_seq_length=5)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = subtokens(tokenizer, [sentence])[0]
    assert [e["input_ids"] for e in examples] == [[cls] + ids[0] + [sep], [cls] + ids[1][:3] + [sep],
                                                  [cls] + ids[2] + [sep]]
    assert [e["labels"] for e in examples] == [[-100, 4, -100], [-100, 5, -100, -100, -100], [-100, 6, -100]]


def test_label_on_the_first_sub_token_and_ignore_index_elsewhere(tokenizer):
    sentence = ["Hello", "qwerty", "world", "bratwurst"]
    examples = labelled_examples(tokenizer, [sentence], {"labels": [[1, 2, 3, 4]], "capit_labels": [[0, 1, 0, 1]]},
                                 max_seq_length=128)
    assert len(examples) == 1
    (example,) = examples
    assert example["input_ids"] == [tokenizer.cls_token_id] + tokenizer.convert_tokens_to_ids(
        ["hello", "q", "##wer", "##ty", "world", "brat", "##wu", "##rst"]) + [tokenizer.sep_token_id]
    assert example["labels"] == [-100, 1, 2, -100, -100, 3, 4, -100, -100, -100]
    assert example["capit_labels"] == [-100, 0, 1, -100, -100, 0, 1, -100, -100, -100]
    assert IGNORE_INDEX == -100


def test_long_sentence_training_windows_do_not_overlap_and_label_each_word_once(tokenizer):
    rng = random.Random(5)
    sentence = [rng.choice(ONE + THREE) for _ in range(300)]
    labels = list(range(300))
    examples = labelled_examples(tokenizer, [sentence], {"labels": [labels]}, max_seq_length=32)
    assert len(examples) > 10 and all(len(e["input_ids"]) <= 32 for e in examples)
    assert [x for e in examples for x in e["labels"] if x != IGNORE_INDEX] == labels


def test_inference_windows_overlap_by_the_margin_and_each_word_is_predicted_once(tokenizer):
    sentence = [ONE[i % len(ONE)] for i in range(100)]  # one sub-token a word: window = 14 words
    windows = word_windows(tokenizer, [sentence], max_seq_length=16, margin=3)
    assert len(windows) > 5 and all(len(w.input_ids) <= 16 and w.words for w in windows)
    # consecutive windows share context words: the second holds 3 words before its first kept word
    assert windows[1].words[0][0] == 1 + 3
    kept = [word for w in windows for _, word in w.words]
    assert kept == list(range(100))
    # a word is predicted in a window where it has 3 words of context on each side (but at the ends)
    for w in windows:
        n_words = len(w.input_ids) - 2
        for position, word in w.words:
            left, right = position - 1, n_words - position
            assert left >= min(3, word) and right >= min(3, 100 - 1 - word)


def test_no_word_is_dropped_when_a_long_word_follows_the_margin(tokenizer):
    """The case that once lost word 5: after window (3, 5) kept only word 4, the next one started 2 words
    of margin back, at word 4, which alone filled it."""
    sentence = ["the"] * 4 + ["qwerty", "qwerty", "the", "the"]  # sub-token lengths 1 1 1 1 3 3 1 1
    (start, end, _, _), = [w for w in plan_windows([1, 1, 1, 1, 3, 3, 1, 1], 4, 2) if w[2] <= 5 < w[3]]
    assert start <= 5 < end
    windows = word_windows(tokenizer, [sentence], max_seq_length=6, margin=2)
    kept = [word for w in windows for _, word in w.words]
    assert kept == list(range(len(sentence)))
    assert all(len(w.input_ids) <= 6 for w in windows)


# ----------------------------------------------------------------------------- predictions back to words

def test_word_predictions_gives_one_row_per_word_from_the_window_that_keeps_it(tokenizer, vocabulary):
    rng = random.Random(11)
    sentences = [["a"] * 5] + _random_sentences(rng, {w: n for w, n in vocabulary.items() if n <= 2}, 20, 70)
    windows = word_windows(tokenizer, sentences, max_seq_length=12, margin=2)
    outputs = []
    for w in windows:  # output 0: the word index where kept, -1 elsewhere; output 1: the sentence
        first = np.full((len(w.input_ids), 1), -1.0)
        for position, word in w.words:
            first[position] = word
        outputs.append([first, np.full((len(w.input_ids), 2), float(w.sentence))])
    rows = word_predictions(windows, outputs, len(sentences))
    assert [len(r) for r in rows] == [len(s) for s in sentences]
    assert all([float(x[0]) for x in r] == list(range(len(r))) for r in rows)
    second = word_predictions(windows, outputs, len(sentences), output=1)
    assert all(all(x.tolist() == [s, s] for x in r) for s, r in enumerate(second))


def test_predict_words_returns_the_output_at_each_words_first_sub_token(tokenizer, vocabulary):
    """Through run_batched: length-sorted batches, padding and the attention mask feed, back in input order."""
    seen = []

    def runner(feeds):
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        seen.append(ids.shape)
        assert ((ids == tokenizer.pad_token_id) | (mask == 1)).all() and mask[:, 0].all()
        per_token = ids[..., None].astype(np.float32)
        return [per_token, per_token * mask[..., None]]
    runner.input_names = ("input_ids", "attention_mask")

    rng = random.Random(3)
    sentences = _random_sentences(rng, vocabulary, 30, 120)
    out = predict_words(runner, tokenizer, sentences, max_seq_length=24, batch_size=4, margin=4)
    assert len(out) == 2 and len(seen) > 1
    firsts = [[p[0] for p in s] for s in subtokens(tokenizer, sentences)]
    for k in range(2):
        assert [[int(x[0]) for x in s] for s in out[k]] == firsts


def test_sentence_labels_go_on_every_window_of_their_sentence(tokenizer):
    sentences = [["the"] * 40, ["a", "city"]]
    examples = labelled_examples(tokenizer, sentences, {"slot_labels": [[1] * 40, [2, 3]]}, max_seq_length=16,
                                 sentence_labels={"intent_labels": [7, 9]})
    assert len(examples) > 3 and [e["intent_labels"] for e in examples] == [7] * (len(examples) - 1) + [9]
    assert collate_examples(examples, 0)["intent_labels"].tolist() == [7] * (len(examples) - 1) + [9]


def test_predict_words_averages_a_per_sentence_output_over_the_windows(tokenizer):
    """A per-sentence output (an intent: one row a window) becomes one row a sentence, the windows' mean."""
    def runner(feeds):
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        return [mask.sum(1, keepdims=True).astype(np.float32), ids[..., None].astype(np.float32)]  # window length
    runner.input_names = ("input_ids", "attention_mask")

    sentences = [["the"] * 30, ["a", "city"]]
    windows = word_windows(tokenizer, sentences, max_seq_length=12, margin=2)
    per_window = [len(w.input_ids) for w in windows if w.sentence == 0]
    intent, tokens = predict_words(runner, tokenizer, sentences, max_seq_length=12, batch_size=8, margin=2)
    assert len(per_window) > 2 and [len(s) for s in tokens] == [30, 2]
    assert intent[1].shape == (1,) and float(intent[1][0]) == 4.0     # [CLS] a city [SEP], one window
    assert float(intent[0][0]) == pytest.approx(sum(per_window) / len(per_window))  # the mean over its windows


def test_empty_sentences_get_no_window_and_no_row(tokenizer):
    windows = word_windows(tokenizer, [[], ["a"]], 16)
    assert [w.sentence for w in windows] == [1]
    assert word_predictions(windows, [[np.zeros((3, 1))]], 2) == [[], [np.zeros(1)]]


# ----------------------------------------------------------------------------- collate and the DataModule

def test_collate_pads_each_field_with_its_own_value(tokenizer):
    pad = tokenizer.pad_token_id
    examples = [
        {"input_ids": [101, 7, 8, 102], "token_type_ids": [0, 0, 1, 1], "labels": [-100, 3, 4, -100],
         "capit_labels": [-100, 1, 0, -100], "label": 2, "weight": 0.5},
        {"input_ids": [101, 9, 102], "token_type_ids": [0, 1, 1], "labels": [-100, 5, -100],
         "capit_labels": [-100, 1, -100], "label": 0, "weight": 1.5},
    ]
    batch = collate_examples(examples, pad_id=pad)
    assert batch["input_ids"].tolist() == [[101, 7, 8, 102], [101, 9, 102, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 1], [0, 1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 3, 4, -100], [-100, 5, -100, -100]]
    assert batch["capit_labels"].tolist() == [[-100, 1, 0, -100], [-100, 1, -100, -100]]
    assert batch["label"].tolist() == [2, 0] and batch["label"].dtype == torch.long
    assert batch["weight"].dtype == torch.float and batch["weight"].tolist() == [0.5, 1.5]
    assert all(batch[k].dtype == torch.long for k in ("input_ids", "attention_mask", "labels", "token_type_ids"))
    assert collate_examples(examples, pad_id=77)["input_ids"][1, 3] == 77  # the tokenizer's pad id, not 0


def test_datamodule_batches_every_example_once_padded_to_similar_lengths(tokenizer, vocabulary):
    rng = random.Random(8)
    sentences = _random_sentences(rng, vocabulary, 300, 40)
    tags = [[rng.randint(0, 8) for _ in s] for s in sentences]
    examples = labelled_examples(tokenizer, sentences, {"labels": tags}, max_seq_length=32)
    val = examples[:50]
    module = BucketedDataModule(examples, val, pad_id=tokenizer.pad_token_id, seed=1, train_batch_size=16,
                                val_batch_size=8)

    def rows(loader):
        out = []
        for batch in loader:
            assert set(batch) == {"input_ids", "attention_mask", "labels"}
            for ids, mask, labels in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist(),
                                         batch["labels"].tolist()):
                n = sum(mask)
                assert ids[n:] == [tokenizer.pad_token_id] * (len(ids) - n) and labels[n:] == [-100] * (len(ids) - n)
                assert mask[:n] == [1] * n
                out.append((tuple(ids[:n]), tuple(labels[:n])))
        return out

    train_loader = module.train_dataloader()
    epoch0 = rows(train_loader)
    expected = sorted((tuple(e["input_ids"]), tuple(e["labels"])) for e in examples)
    assert sorted(epoch0) == expected
    train_loader.batch_sampler.set_epoch(1)
    epoch1 = rows(train_loader)
    assert sorted(epoch1) == expected and epoch1 != epoch0  # reshuffled each epoch
    # batches are cut from length-sorted windows: far less padding than the examples in their given order
    padded = sum(b["input_ids"].numel() for b in module.train_dataloader())
    in_order = sum(16 * max(len(e["input_ids"]) for e in examples[i:i + 16]) for i in range(0, len(examples), 16))
    assert padded < 0.8 * in_order
    val_rows = rows(module.val_dataloader())
    assert sorted(val_rows) == sorted((tuple(e["input_ids"]), tuple(e["labels"])) for e in val)
    assert rows(module.val_dataloader()) == val_rows  # validation is not shuffled
