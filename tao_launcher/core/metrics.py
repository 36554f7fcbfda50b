"""Classification metrics from a confusion matrix: accuracy, per-class precision/recall/F1, macro and weighted F1;
and span-level (entity) precision/recall/F1 by the conlleval rules, for tagged tokens.

Shared by every task that labels sentences or tokens (NER and slot filling use the span metrics).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     ignore_index: int = -100) -> torch.Tensor:
    """(true x predicted) counts; positions whose label is ``ignore_index`` (padding, sub-word pieces) are dropped."""
    keep = labels != ignore_index
    preds, labels = preds[keep], labels[keep]
    index = labels.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_report(matrix: torch.Tensor, label_names: Sequence[str]) -> Dict:
    """A dict like sklearn's classification_report(output_dict=True), from a (true x predicted) matrix.
    ``macro_f1`` averages the classes that occur, in gold or in predictions, as sklearn does without a label
    list: a class that neither occurs nor is predicted (an UNK intent that dev lacks, a class missing from a
    small validation set) would count as F1 0 and pull the average down for nothing."""
    matrix = matrix.double()
    tp = matrix.diag()
    support = matrix.sum(1)
    predicted = matrix.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    total = support.sum().item()
    report: Dict = {}
    for i, name in enumerate(label_names):
        report[name] = {"precision": precision[i].item(), "recall": recall[i].item(),
                        "f1": f1[i].item(), "support": int(support[i].item())}
    report["accuracy"] = tp.sum().item() / total if total else 0.0
    present = (support > 0) | (predicted > 0)
    report["macro_f1"] = f1[present].mean().item() if bool(present.any()) else 0.0
    report["weighted_f1"] = (f1 * support).sum().item() / total if total else 0.0
    report["support"] = int(total)
    return report


def format_report(report: Dict, label_names: List[str]) -> str:
    width = max([len(n) for n in label_names] + [12])
    lines = [f"{'label'.ljust(width)}  precision  recall     f1  support"]
    for name in label_names:
        r = report[name]
        lines.append(f"{name.ljust(width)}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}  {r['support']:7d}")
    lines.append(f"{'accuracy'.ljust(width)}  {report['accuracy']:9.4f}  (of {report['support']})")
    lines.append(f"{'macro f1'.ljust(width)}  {report['macro_f1']:9.4f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- span (entity) metrics

def _split_tag(tag: str) -> Tuple[str, str]:
    """('B'|'I'|'E'|'S'|'O', type); a tag with no such prefix, other than 'O', is 'I-<tag>'."""
    if tag == "O":
        return "O", ""
    if len(tag) >= 2 and tag[1] == "-" and tag[0] in "BIES":
        return tag[0], tag[2:]
    return "I", tag


def extract_spans(tags: Sequence[str]) -> List[Tuple[str, int, int]]:
    """The entities of one sentence as (type, start, end-exclusive), by the conlleval rules.

    ``B-X`` starts an entity; ``I-X`` (or ``E-X``) continues the open entity only if it is an X one that has
    not ended, else it starts one (so IOB1 reads as it means); ``E-X`` and ``S-X`` end theirs; ``O`` ends.
    """
    spans: List[Tuple[str, int, int]] = []
    start, kind, prev = -1, "", "O"  # the open entity's start (-1: none) and type; the previous tag's prefix
    for i, tag in enumerate(tags):
        prefix, type_ = _split_tag(tag)
        continues = prefix in ("I", "E") and prev in ("B", "I") and type_ == kind
        if start >= 0 and not continues:
            spans.append((kind, start, i))
            start = -1
        if prefix != "O" and not continues:
            start, kind = i, type_
        if prefix in ("E", "S") and start >= 0:
            spans.append((kind, start, i + 1))
            start = -1
        prev = prefix
    if start >= 0:
        spans.append((kind, start, len(tags)))
    return spans


def span_counts(pred: torch.Tensor, gold: torch.Tensor, label_names: Sequence[str],
                ignore_index: int = -100) -> torch.Tensor:
    """[correct, predicted, gold] span counts of a batch of tag ids (batch, sequence), over the positions whose
    gold is not ``ignore_index`` (first sub-tokens), row by row: what a validation step adds up."""
    counts = torch.zeros(3, dtype=torch.long)
    for p_row, g_row in zip(pred.tolist(), gold.tolist()):
        keep = [i for i, g in enumerate(g_row) if g != ignore_index]
        p_spans = set(extract_spans([label_names[p_row[i]] for i in keep]))
        g_spans = set(extract_spans([label_names[g_row[i]] for i in keep]))
        counts += torch.tensor([len(p_spans & g_spans), len(p_spans), len(g_spans)])
    return counts


def precision_recall_f1(correct: int, support: int, predicted: int) -> Dict:
    """Precision, recall and F1 of ``correct`` hits among ``predicted`` items and ``support`` gold ones (0 where undefined)."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "predicted": predicted}


def span_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Dict:
    """Entity precision/recall/F1 per type and micro-averaged: a predicted entity counts only if its type,
    start and end all equal a gold entity's (conlleval). ``support`` counts gold entities, ``predicted``
    predicted ones; ``token_accuracy`` is the fraction of tokens whose tag equals the gold tag."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted ones")
    counts: Dict[str, List[int]] = {}  # type -> [correct, gold, predicted]
    tokens = same = 0
    for number, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {number}: {len(g)} gold tags but {len(p)} predicted ones")
        tokens += len(g)
        same += sum(a == b for a, b in zip(g, p))
        gold_spans, pred_spans = set(extract_spans(g)), set(extract_spans(p))
        for spans, column in ((gold_spans, 1), (pred_spans, 2), (gold_spans & pred_spans, 0)):
            for kind, _, _ in spans:
                counts.setdefault(kind, [0, 0, 0])[column] += 1
    per_type = {kind: precision_recall_f1(*counts[kind]) for kind in sorted(counts)}
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    return {"per_type": per_type, "micro": precision_recall_f1(*total), "token_accuracy": same / tokens if tokens else 0.0}


def format_span_report(report: Dict) -> str:
    """A table of span_report: one row per entity type, then the micro average and the token accuracy."""
    rows = list(report["per_type"].items()) + [("micro avg", report["micro"])]
    width = max([len(name) for name, _ in rows] + [12])
    lines = [f"{'entity'.ljust(width)}  precision  recall      f1  support  predicted"]
    for name, r in rows:
        lines.append(f"{name.ljust(width)}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}"
                     f"  {r['support']:7d}  {r['predicted']:9d}")
    lines.append(f"{'token acc'.ljust(width)}  {report['token_accuracy']:9.4f}")
    return "\n".join(lines)
