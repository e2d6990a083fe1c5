"""L2: fine-tuning on wrong forget labels with a quadratic pull towards earlier weights (reference Sec. 2.5).

    CE(z(x), y~) + lambda * sum_t sum_n Omega_{t,n} (theta_n - theta*_{t,n})^2

x: the forget batch (wrong labels y~), with ``--replay`` also the remain batch; theta*_t: the weights at the start of
task t; Omega_t: their importance, 1 for L2 (EWC and MAS replace only ``importance``)."""
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import FineTuneMethod
from engine.method import METHODS, Option, StepInfo, TaskContext, forward_pair
from util.device import in_eval_mode

Term = dict[str, list[torch.Tensor]]


def weighted_penalty(params: list[torch.Tensor], terms: list[Term]) -> torch.Tensor:
    """sum_t sum_n Omega_{t,n} (theta_n - theta*_{t,n})^2 summed over every entry; ``terms``: one dict per term,
    'anchor' (theta*_t) and 'importance' (Omega_t), tensors shaped like ``params``."""
    total = params[0].new_zeros(())
    for term in terms:
        for p, anchor, weight in zip(params, term["anchor"], term["importance"]):
            total = total + (weight * (p - anchor).pow(2)).sum()
    return total


@in_eval_mode
def gradient_importance(model: nn.Module, params: list[nn.Parameter], batches: Iterable, objective: Callable,
                        contribution: Callable, device: torch.device, autocast: Callable) -> list[torch.Tensor]:
    """(1/nb) sum_b contribution(d objective_b / d theta, |b|) per parameter, in eval mode; ``objective`` maps (margin
    logits, labels) to a scalar, ``contribution`` (a parameter's gradient, batch size) to that batch's share."""
    sums, num_batches = [torch.zeros_like(p) for p in params], 0
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        with autocast():
            logits, _ = model(images, labels)
        grads = torch.autograd.grad(objective(logits.float(), labels), params, allow_unused=True)
        for total, grad in zip(sums, grads):
            if grad is not None:
                total.add_(contribution(grad, len(labels)))
        num_batches += 1
    return [s / max(1, num_batches) for s in sums]


def penalty_option(flag: str) -> Option:
    return Option(flag, 0.1, "lambda, weight of the summed importance-weighted squared distance to earlier weights")


@METHODS.register("l2")
class L2(FineTuneMethod):
    """Full fine-tuning with an unweighted (importance 1) quadratic penalty; base of EWC and MAS."""

    name = "l2"
    presets = {"paper": "--lr 1e-4 --l2_lambda 0.1 --replay", "cpu": "--lr 1e-3 --l2_lambda 0.1 --replay",
               "smoke": "-e 3 --lr 3e-3 --l2_lambda 1 --replay"}
    no_retain_refusal = None  # without --replay its steps see forget images only
    group = "L2 (quadratic penalty)"  # one group per method, named after it; EWC and MAS have their own flag
    options = {**FineTuneMethod.options, "penalty_weight": penalty_option("l2_lambda"),
               "replay": Option("replay", False), "online": Option("online", False)}

    def __init__(self, model: nn.Module, **options):
        super().__init__(model, **options)
        self.terms: list[Term] = []

    @classmethod
    def check_arguments(cls, parser, args) -> None:
        if args.no_retain and args.replay:
            parser.error(f"--method {cls.name} --replay trains on remain images, which --no_retain does not load; "
                         f"drop --replay")

    def importance(self, ctx: TaskContext, params: list[nn.Parameter]) -> list[torch.Tensor]:
        """Omega of a new term; L2 weighs every parameter equally."""
        return [torch.ones_like(p) for p in params]

    def begin_task(self, ctx: TaskContext) -> None:
        """Anchors a new term at the current weights, its importance measured on the task's remain subset."""
        # The original measured it on the full remain set even when few-shot (its bug 7). ``online`` keeps one term,
        # its importance the sum of every task's (the original's online mode, online EWC with decay 1).
        super().begin_task(ctx)
        params = self.trainable_parameters()
        self.terms = [{k: [t.to(ctx.device) for t in v] for k, v in term.items()} for term in self.terms]
        importance = self.importance(ctx, params)
        if self.online and self.terms:
            importance = [old + new for old, new in zip(self.terms[0]["importance"], importance)]
        term = {"anchor": [p.detach().clone() for p in params], "importance": importance}
        self.terms = [term] if self.online else self.terms + [term]

    def batches(self, ctx: TaskContext, loaders):
        """With replay the default pairing (remain pass, forget cycled); without, a pass over the forget data."""
        yield from super().batches(ctx, loaders) if self.replay else ((None, forget) for forget in loaders["forget"])

    def compute_loss(self, remain, forget, step: StepInfo) -> dict[str, torch.Tensor]:
        forget = (forget[0], self.relabel(forget[1]))
        if remain is not None:
            logits_r, logits_f, _, _ = forward_pair(self.model, remain, forget)
            logits, labels = torch.cat([logits_r, logits_f]), torch.cat([remain[1], forget[1]])
        else:
            (logits, _), labels = self.model(*forget), forget[1]
        losses = {"ce": F.cross_entropy(logits.float(), labels),
                  "penalty": self.penalty_weight * weighted_penalty(self.trainable_parameters(), self.terms)}
        losses["total"] = losses["ce"] + losses["penalty"]
        return losses

    def state_dict(self) -> dict[str, object]:
        return {"terms": [{k: [t.detach().cpu() for t in v] for k, v in term.items()} for term in self.terms]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Terms come back on the CPU; ``begin_task`` moves them to the run's device."""
        self.terms = [{k: list(v) for k, v in term.items()} for term in state.get("terms", [])]
