"""Forgetting metrics from per-class test counts: Acc_f, Acc_r, Acc_o, Acc_m and the H-mean (GS-LoRA Sec. 5).

Accuracies are micro-averaged over a class set's images, in percent, in two conventions: ``original`` (argmax of the
margin logits computed *with the true label*, as the papers report: stricter) and ``plain`` (margin-free argmax)."""
from dataclasses import dataclass
from typing import Iterable

import torch


@dataclass
class ClassCounts:
    """Per-class numbers of test images and of correct predictions under each convention, shape (C,)."""

    total: torch.Tensor
    correct: dict[str, torch.Tensor]

    def accuracy(self, classes: Iterable[int], convention: str = "original") -> float | None:
        """Percent correct over all images of ``classes``; None for an empty class set."""
        classes = list(classes)
        total = int(self.total[classes].sum()) if classes else 0
        return 100.0 * int(self.correct[convention][classes].sum()) / total if total else None


def count_correct(plain_logits: torch.Tensor, margin_logits: torch.Tensor, labels: torch.Tensor,
                  num_classes: int) -> dict[str, torch.Tensor]:
    """Per-class correct counts of one batch under both conventions (plus 'total'), each shape (C,)."""
    counts = {"total": torch.bincount(labels, minlength=num_classes)}
    for name, logits in (("plain", plain_logits), ("original", margin_logits)):
        counts[name] = torch.bincount(labels[logits.argmax(dim=1) == labels], minlength=num_classes)
    return counts


def h_mean(acc_r: float | None, acc_f_before: float | None, acc_f: float | None) -> float | None:
    """H = 2 * Acc_r * drop / (Acc_r + drop), drop = Acc_f(before) - Acc_f(after); 0 when both are 0. A rise in Acc_f
    is drop 0: the original's negative drop could give a large H (Acc_r 4, drop -4.5: 72) and win its selection."""
    if acc_r is None or acc_f_before is None or acc_f is None:
        return None
    drop = max(acc_f_before - acc_f, 0.0)  # a negative drop is no forgetting (fixed: see the docstring)
    denominator = acc_r + drop
    return 0.0 if denominator == 0 else 2.0 * acc_r * drop / denominator


def task_metrics(before: ClassCounts, after: ClassCounts, remain, forget, old, missing,
                 convention: str) -> dict[str, float | None]:
    """Acc_f, Acc_r, Acc_o, Acc_m after a task, their before-values and H, in one convention (percent); None where a
    value does not apply (no old classes in the first task, no missing classes)."""
    metrics = {}
    for key, classes in (("f", forget), ("r", remain), ("o", old), ("m", missing)):
        metrics[f"acc_{key}"] = after.accuracy(classes, convention)
        metrics[f"acc_{key}_before"] = before.accuracy(classes, convention)
    metrics["h_mean"] = h_mean(metrics["acc_r"], metrics["acc_f_before"], metrics["acc_f"])
    return metrics
