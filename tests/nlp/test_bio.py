"""BIO-constrained tag decoding (tao_launcher/nlp/bio.py)."""

import logging

import numpy as np
import pytest

from tao_launcher.nlp import bio

LABELS = ["O", "B-city", "I-city", "B-date", "I-date"]
LOG = logging.getLogger("test_bio")


def logits_for(*rows):
    """Per-word logits from per-word probabilities (rows in LABELS order)."""
    return np.log(np.array(rows, dtype=np.float64))


def names(ids):
    return [LABELS[i] for i in ids]


def test_an_i_tag_after_o_is_not_decoded_the_sequence_that_bio_allows_wins():
    # word 2's argmax is I-city after O: argmax makes a one-word false entity; BIO decoding must not
    logits = logits_for([0.9, 0.05, 0.01, 0.02, 0.02], [0.40, 0.05, 0.45, 0.05, 0.05])
    assert names(bio.decode(logits, LABELS, False)) == ["O", "I-city"]
    assert names(bio.decode(logits, LABELS, True)) == ["O", "O"]


def test_a_likely_entity_is_repaired_into_b_i_not_dropped():
    # "new york": B-city is close behind O on word 1, I-city is sure on word 2: B-city I-city is best overall
    logits = logits_for([0.50, 0.45, 0.01, 0.02, 0.02], [0.02, 0.02, 0.92, 0.02, 0.02])
    assert names(bio.decode(logits, LABELS, False)) == ["O", "I-city"]
    assert names(bio.decode(logits, LABELS, True)) == ["B-city", "I-city"]


def test_an_i_tag_of_another_type_does_not_continue_an_entity():
    logits = logits_for([0.02, 0.9, 0.02, 0.04, 0.02], [0.05, 0.05, 0.35, 0.05, 0.50])
    decoded = names(bio.decode(logits, LABELS, True))
    assert decoded == ["B-city", "I-city"]
    assert bio.first_violation([decoded]) is None


def test_valid_argmax_sequences_are_left_as_they_are():
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(size=(7, len(LABELS)))
        argmax = bio.decode(logits, LABELS, False)
        if bio.first_violation([names(argmax)]) is None:
            assert bio.decode(logits, LABELS, True) == argmax


def test_decoding_never_breaks_the_rule_and_keeps_impossible_labels_impossible():
    rng = np.random.default_rng(1)
    for _ in range(50):
        logits = rng.normal(size=(9, len(LABELS))) * 3
        logits[:, 3] = -1e9  # a masked label (as UNK is masked)
        decoded = bio.decode(logits, LABELS, True)
        assert bio.first_violation([names(decoded)]) is None
        assert 3 not in decoded


def test_first_violation_names_the_sentence_and_word():
    assert bio.first_violation([["O", "B-city", "I-city"], ["O", "O", "I-date"]]) == (1, 2)
    assert bio.first_violation([["I-city"]]) == (0, 0)
    assert bio.first_violation([["B-city", "I-city", "B-date", "I-date", "O"]]) is None


@pytest.mark.parametrize("requested, tags, labels, expected", [
    (True, [["B-city", "I-city", "O"]], LABELS, True),
    (False, [["B-city", "I-city", "O"]], LABELS, False),
    (True, [["O", "I-city", "I-city"]], LABELS, False),  # IOB1 data: I-X opens an entity, so keep argmax
    (True, [["O", ",", "."]], ["O", ",", "."], False),  # no I- tags: nothing to constrain
])
def test_choose_uses_bio_only_when_asked_and_the_training_tags_follow_it(requested, tags, labels, expected):
    assert bio.choose(requested, tags, labels, LOG) is expected


def test_decode_labelled_decodes_only_the_labelled_positions_of_each_window():
    logits = np.stack([logits_for([0.9, 0.02, 0.04, 0.02, 0.02], [0.9, 0.02, 0.04, 0.02, 0.02],
                                  [0.40, 0.05, 0.45, 0.05, 0.05])] * 2)
    labelled = np.array([[True, False, True], [False, False, False]])
    out = bio.decode_labelled(logits, labelled, LABELS, True)
    assert out.tolist() == [[0, 0, 0], [0, 0, 0]]  # window 1 is "O O" (I-city after O is not allowed)
    assert bio.decode_labelled(logits, labelled, LABELS, False)[0, 2] == 2
