"""Span-level (entity) metrics by the conlleval rules, and confusion_matrix's ignore_index."""

from __future__ import annotations

import pytest
import torch

from tao_launcher.core.metrics import (confusion_matrix, extract_spans, format_span_report, span_report)


@pytest.mark.parametrize("tags, spans", [
    ([], []),
    (["O", "O"], []),
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    # I- after O, and at sentence start, starts an entity (IOB1)
    (["I-PER", "I-PER", "O", "I-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    # I-ORG after B-PER starts an ORG entity
    (["B-PER", "I-ORG", "I-ORG"], [("PER", 0, 1), ("ORG", 1, 3)]),
    # B- always starts a new one, even of the same type
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    (["I-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
    # a tag without a prefix is I-<tag>
    (["PER", "PER", "O", "LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["B-PER", "PER"], [("PER", 0, 2)]),
    # IOBES: E- and S- end their entity
    (["S-PER", "B-LOC", "E-LOC", "I-LOC", "E-LOC"], [("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 5)]),
    (["E-PER", "S-PER", "S-PER"], [("PER", 0, 1), ("PER", 1, 2), ("PER", 2, 3)]),
    (["B-MISC", "I-MISC", "I-MISC"], [("MISC", 0, 3)]),
])
def test_extract_spans_follows_conlleval(tags, spans):
    assert extract_spans(tags) == spans


def test_span_report_on_a_hand_counted_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG", "I-ORG", "O", "O"]]
    # gold PER(0,2) LOC(3,4) | ORG(0,3); predicted PER(0,2) ORG(3,4) | ORG(0,2): only PER is right
    report = span_report(gold, pred)
    assert report["micro"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3,
                                             "support": 3, "predicted": 3})
    assert report["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1, "predicted": 1}
    assert report["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert report["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 2}
    assert list(report["per_type"]) == ["LOC", "ORG", "PER"]
    assert report["token_accuracy"] == pytest.approx(5 / 8)


def test_partial_overlap_and_wrong_type_are_misses():
    gold = [["B-ORG", "I-ORG", "O"], ["B-PER", "O"], ["B-LOC", "I-LOC", "O"]]
    pred = [["B-ORG", "O", "O"],  # too short
            ["B-ORG", "O"],  # right boundaries, wrong type
            ["B-LOC", "I-LOC", "I-LOC"]]  # too long
    report = span_report(gold, pred)
    assert report["micro"]["f1"] == 0.0
    assert report["micro"]["support"] == 3 and report["micro"]["predicted"] == 3
    assert report["per_type"]["PER"]["recall"] == 0.0 and report["per_type"]["ORG"]["predicted"] == 2


def test_iob1_prediction_matches_iob2_gold_entity_for_entity():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["I-PER", "I-PER", "O", "I-LOC"]]
    report = span_report(gold, pred)
    assert report["micro"]["f1"] == 1.0
    assert report["token_accuracy"] == 0.5  # tag strings differ although the entities agree


def test_micro_average_weights_every_entity():
    gold = [["B-PER", "O", "B-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "B-PER", "O", "O"]]
    report = span_report(gold, pred)
    assert report["micro"]["precision"] == 1.0
    assert report["micro"]["recall"] == pytest.approx(2 / 3)
    assert report["micro"]["f1"] == pytest.approx(0.8)


def test_no_entities_anywhere_scores_zero_without_dividing_by_zero():
    report = span_report([["O", "O"]], [["O", "O"]])
    assert report["per_type"] == {}
    assert report["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0}
    assert report["token_accuracy"] == 1.0
    assert span_report([], [])["token_accuracy"] == 0.0


def test_lengths_that_differ_are_a_value_error():
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
        span_report([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        span_report([["O"], ["O"]], [["O"]])


def test_format_span_report_lists_types_micro_and_token_accuracy():
    text = format_span_report(span_report([["B-PER", "I-PER", "B-MISC"]], [["B-PER", "I-PER", "O"]]))
    lines = text.splitlines()
    assert lines[0].split() == ["entity", "precision", "recall", "f1", "support", "predicted"]
    assert lines[1].split() == ["MISC", "0.0000", "0.0000", "0.0000", "1", "0"]
    assert lines[2].split() == ["PER", "1.0000", "1.0000", "1.0000", "1", "1"]
    assert lines[3].split() == ["micro", "avg", "1.0000", "0.5000", "0.6667", "2", "1"]
    assert lines[4].split() == ["token", "acc", "0.6667"]


def test_confusion_matrix_drops_ignore_index_positions():
    labels = torch.tensor([0, 1, -100, 2, -100, 1])
    preds = torch.tensor([0, 2, 1, 2, 0, 1])
    matrix = confusion_matrix(preds, labels, 3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert matrix.sum().item() == 4
    # another ignore_index; and without one to drop, the counts are every position's
    assert confusion_matrix(preds[:2], labels[:2], 3, ignore_index=0).tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]
    labels, preds = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 0, 2])
    assert confusion_matrix(preds, labels, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
