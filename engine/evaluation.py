"""Evaluation passes in eval mode (dropout off, LoRA folded; the mode restored after): per-class correct counts in both
conventions, class-mean embeddings, test reports. Under torchrun the counting passes (``evaluate``,
``outside_accuracy``) are split over the processes and summed: every process must call them."""
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.folders import BatchLoader, Images, ImageTensors, StreamedImages
from util.device import autocast, in_eval_mode
from util.distributed import all_reduce_sum, shard_indices
from util.metrics import ClassCounts, count_correct


@torch.no_grad()
@in_eval_mode
def evaluate(model: nn.Module, data: ImageTensors, indices: torch.Tensor, batch_size: int, device: torch.device,
             amp: bool = False) -> ClassCounts:
    """Per-class correct counts under both accuracy conventions over ``data[indices]``, in one pass."""
    num_classes = len(data.classes)
    totals = {k: torch.zeros(num_classes, dtype=torch.int64) for k in ("total", "plain", "original")}
    for images, labels in share_of_pass(data, indices, batch_size):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp):
            plain = model.head.plain_logits(model.backbone(images))
        margin = model.head.apply_margin(plain.float(), labels)
        for key, value in count_correct(plain.float(), margin, labels, num_classes).items():
            totals[key] += value.cpu()
    totals = {k: all_reduce_sum(v) for k, v in totals.items()}
    return ClassCounts(totals.pop("total"), totals)


def share_of_pass(data: Images, indices: torch.Tensor, batch_size: int) -> Iterable:
    """Batches of this process's share of ``data[indices]`` (none if it gets no image); the caller sums the counts."""
    mine = shard_indices(indices)
    return () if len(mine) == 0 and len(indices) > 0 else BatchLoader(data, mine, batch_size)


@torch.no_grad()
@in_eval_mode
def class_mean_embeddings(model: nn.Module, data: ImageTensors, indices: torch.Tensor, batch_size: int,
                          device: torch.device, amp: bool = False) -> dict[int, torch.Tensor]:
    """Mean embedding of every class present in ``data[indices]``, in eval mode (the GS-LoRA++ prototypes)."""
    sums, counts = {}, {}  # per class: the sum of its embeddings, their number
    for images, labels in BatchLoader(data, indices, batch_size):
        with autocast(device, amp):
            emb = model.backbone(images.to(device)).float().cpu()
        for c in labels.unique().tolist():
            mask = labels == c
            sums[c] = sums.get(c, 0) + emb[mask].sum(0)
            counts[c] = counts.get(c, 0) + int(mask.sum())
    return {c: sums[c] / counts[c] for c in sums}


@dataclass
class OutsideClasses:
    """Images of classes outside the run's, scored by a fixed full-size head: ImageNet-900 with the ViT-B/16 file's
    1000-way head (the papers' missing-class evaluation). ``rows[k]``: the head row of folder k's class."""

    images: StreamedImages
    rows: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor


@torch.no_grad()
@in_eval_mode
def outside_accuracy(model: nn.Module, outside: OutsideClasses, batch_size: int, device: torch.device,
                     amp: bool = False) -> float:
    """Percent of ``outside``'s images whose argmax over the kept full head (not the run's cut one) is their class."""
    weight, bias = outside.weight.to(device), outside.bias.to(device)
    correct = torch.zeros((), dtype=torch.int64)
    for images, labels in share_of_pass(outside.images, torch.arange(len(outside.images)), batch_size):
        with autocast(device, amp):
            emb = model.backbone(images.to(device, non_blocking=True))
        predicted = F.linear(emb.float(), weight, bias).argmax(1).cpu()
        correct += (predicted == outside.rows[labels]).sum()
    return 100.0 * int(all_reduce_sum(correct)) / len(outside.images)


def test_report(model: nn.Module, test: ImageTensors, batch_size: int, device: torch.device,
                amp: bool = False) -> dict[str, object]:
    """Test accuracy overall and per class (keyed by class folder name), in both conventions."""
    counts = evaluate(model, test, torch.arange(len(test)), batch_size, device, amp)
    report: dict[str, object] = {}
    for convention in ("original", "plain"):
        report[f"test_acc_{convention}"] = counts.accuracy(range(len(test.classes)), convention)
        report[f"per_class_{convention}"] = {name: counts.accuracy([c], convention)
                                             for c, name in enumerate(test.classes)}
    return report
