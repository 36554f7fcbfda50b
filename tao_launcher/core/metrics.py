"""Classification metrics from a confusion matrix: accuracy, per-class precision/recall/F1, macro and weighted F1.

Shared by every task that labels sentences or tokens.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    index = labels.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_report(matrix: torch.Tensor, label_names: Sequence[str]) -> Dict:
    """A dict like sklearn's classification_report(output_dict=True), from a (true x predicted) matrix."""
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
    report["macro_f1"] = f1.mean().item()
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
