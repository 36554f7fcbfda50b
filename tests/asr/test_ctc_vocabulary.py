"""CTC greedy decoding, NeMo's WER/CER, the two vocabularies, and novograd's update rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tao_launcher.asr.ctc import edit_distance, error_counts, greedy_decode, word_error_rate
from tao_launcher.asr.vocabulary import CharVocabulary, SubwordVocabulary, train_subwords
from tao_launcher.core.optim import Novograd

LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


def one_hot(frames, classes):
    out = np.full((1, len(frames), classes), -10.0, dtype=np.float32)
    out[0, np.arange(len(frames)), frames] = 0.0
    return out


def test_greedy_decode_merges_repeats_then_drops_blanks_and_stops_at_the_length():
    blank = 3
    # a a _ a b b _ | (past the length) c
    scores = one_hot([0, 0, 3, 0, 1, 1, 3, 2], 4)
    assert greedy_decode(scores, [7], blank) == [[0, 0, 1]]
    assert greedy_decode(torch.from_numpy(scores), torch.tensor([8]), blank) == [[0, 0, 1, 2]]
    assert greedy_decode(scores, [0], blank) == [[]]


def test_wer_sums_errors_over_summed_reference_words_as_nemo():
    assert edit_distance("kitten".split(), "kitten".split()) == 0
    assert edit_distance(list("kitten"), list("sitting")) == 3
    # one substitution in a 1-word reference, none in a 4-word one: 1/5, not the mean of 1/1 and 0/4
    hyps, refs = ["two", "the cat sat down"], ["one", "the cat sat down"]
    assert error_counts(hyps, refs) == (1, 5)
    assert word_error_rate(hyps, refs) == pytest.approx(0.2)
    assert word_error_rate(["ab"], ["abc"], use_cer=True) == pytest.approx(1 / 3)
    assert word_error_rate(["extra words"], [""]) == float("inf")


def test_char_vocabulary_round_trip_and_unknown_characters():
    vocab = CharVocabulary(LABELS)
    ids = vocab.encode("it's 7 o'clock")
    assert vocab.decode(ids) == "it's  o'clock"  # the digit is not in the vocabulary: left out
    assert vocab.unknown("it's 7!") == {"7", "!"}
    assert len(vocab) == 28 and vocab.kind == "char"


def test_subword_vocabulary_trains_saves_and_reloads(tmp_path):
    texts = [f"{a} {b}" for a in ("zero one two three four five six seven eight nine".split())
             for b in ("hello world speech model test".split())] * 3
    vocab = train_subwords(texts, tmp_path / "tok", vocab_size=30, model_type="unigram")
    assert len(vocab) == 30 and vocab.kind == "subword"
    ids = vocab.encode("seven hello")
    assert vocab.decode(ids) == "seven hello"
    vocab.save(tmp_path / "saved")
    (tmp_path / "tok" / "tokenizer.model").unlink()  # the saved copy must not need the original file
    again = SubwordVocabulary(tmp_path / "saved" / "tokenizer.model")
    assert again.encode("seven hello") == ids and (tmp_path / "saved" / "vocab.txt").read_text().count("\n") == 30


def test_novograd_matches_the_reference_update_rule():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = Novograd([{"params": [w], "weight_decay": 0.01}], lr=0.1, betas=(0.8, 0.5))
    ref_w, m, v = w.detach().clone(), torch.zeros_like(w), None
    for step in range(3):
        grad = torch.randn(4, 3)
        w.grad = grad.clone()
        opt.step()
        norm = grad.norm() ** 2
        v = norm if v is None else 0.5 * v + 0.5 * norm
        update = grad / (v.sqrt() + 1e-8) + 0.01 * ref_w
        m = 0.8 * m + update
        ref_w = ref_w - 0.1 * m
        assert torch.allclose(w.detach(), ref_w, atol=1e-6), step
