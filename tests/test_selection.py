"""Checkpoint selection: the trainable weights a task keeps under --selection val (best H) and last."""
import itertools

import torch
from conftest import NUM_CLASSES, tiny_settings, tiny_tasks

from engine.forgetting import Selector, run_forgetting
from engine.method import StepInfo
from gs_lora import GSLoRA
from util.metrics import ClassCounts
from util.run_log import RunLog


def counts_at(acc_f: int, acc_r: int, task) -> ClassCounts:
    """100 images per class; every forget class acc_f % correct, every remain class acc_r % (both conventions)."""
    correct = torch.zeros(NUM_CLASSES, dtype=torch.int64)
    correct[task.forget], correct[task.remain] = acc_f, acc_r
    return ClassCounts(torch.full((NUM_CLASSES,), 100), {"original": correct, "plain": correct.clone()})


def set_weights(method, seed: int):
    """Fills the trainable weights with seeded random values; returns a copy of them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.trainable_parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return [p.detach().clone() for p in method.trainable_parameters()]


def record_weights(method):
    """Makes ``method`` record its trainable weights after every training step and when its task ends (before LoRA
    is merged: the weights the task keeps); returns the two lists it fills."""
    after_step, at_end = [], []
    train_step, end_task = method.training_step, method.end_task

    def recording_step(*args):
        losses = train_step(*args)
        after_step.append([p.detach().clone() for p in method.trainable_parameters()])
        return losses

    def recording_end(ctx):
        at_end.extend(p.detach().clone() for p in method.trainable_parameters())
        return end_task(ctx)

    method.training_step, method.end_task = recording_step, recording_end
    return after_step, at_end


def fake_accuracies(call: int):
    """(Acc_f, Acc_r) of the call-th evaluation: Acc_f 100 before (call 0), then H = 90 - call, falling."""
    h = max(90 - call, 1)
    return (100, 90) if call == 0 else (100 - h, h)


def test_val_selection_restores_the_weights_of_the_best_h(tiny_data, pretrained_model, tmp_path, monkeypatch):
    """H = 40, 70, 30 over three evaluations, then 20 at the final one: the weights of the H = 70 one come back.

    Acc_f is 100 before; with Acc_r equal to the drop d, H = 2 d^2 / 2d = d, so (Acc_f, Acc_r) = (100 - H, H).
    """
    task = tiny_tasks()[0]
    evaluations = iter([counts_at(100, 90, task)] + [counts_at(100 - h, h, task) for h in (40, 70, 30, 20)])
    monkeypatch.setattr(Selector, "_counts", lambda self: next(evaluations))
    method = GSLoRA(pretrained_model, rank=4)
    selector = Selector(method, tiny_data, task, tiny_settings(tmp_path, selection="val"))
    step = StepInfo(0, 0, 0)  # one object updated in place, as the task loop does
    weights = []
    for epoch, iteration, seed in ((0, 5, 1), (1, 10, 2), (2, 15, 3)):
        step.epoch, step.iteration = epoch, iteration
        weights.append(set_weights(method, seed))
        selector.consider(step)
    step.epoch, step.iteration = 3, 20
    set_weights(method, 4)
    selection = selector.finish(step)
    assert (selection["rule"], selection["epoch"], selection["iteration"]) == ("val", 1, 10)
    assert abs(selection["h_mean"] - 70.0) < 1e-9
    for p, kept in zip(method.trainable_parameters(), weights[1]):
        assert torch.equal(p.detach(), kept)


def test_last_selection_keeps_the_weights_of_the_last_step(tiny_data, pretrained_model, tmp_path, monkeypatch):
    """--selection last: the weights tested and merged at the end of a task are those after its last step,
    even if an evaluation were run and an earlier one had the best H (here H falls 89, 88, ...)."""
    calls = itertools.count()
    monkeypatch.setattr(Selector, "_counts", lambda self: counts_at(*fake_accuracies(next(calls)), tiny_tasks()[0]))
    method = GSLoRA(pretrained_model, rank=4, bound=15.0, beta=0.5, alpha=1e-3)
    after_step, at_end = record_weights(method)
    results = run_forgetting(method, tiny_data, tiny_tasks(1), tiny_settings(tmp_path, selection="last"),
                             RunLog(None))
    assert results["tasks"][0]["selection"]["iteration"] == len(after_step)
    assert not torch.equal(after_step[0][0], after_step[-1][0])  # training moved the weights
    for p, last in zip(at_end, after_step[-1]):
        assert torch.equal(p, last)
