"""Retrain: the reference point of exact unlearning, a freshly initialised model trained on the remain data only.

Each task re-initialises the whole model and trains CE(z(x_r), y_r) on the task's remain subset (reference Sec. 2.5),
after the engine's before-evaluation: the original measured task 0's "before" on an untrained network (bug 6)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.subsets import seeded_generator
from engine.method import METHODS, Method, Option, StepInfo, TaskContext


def reinitialise(model: nn.Module, seed: int) -> None:
    """Calls ``reset_parameters`` of every submodule that has one, drawing from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in model.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()


@METHODS.register("retrain")
class Retrain(Method):
    """Re-initialises the model at every task and trains all of it, head included, on remain data."""

    name = "retrain"
    no_retain_refusal = "it trains on remain images only"
    presets = {"paper": "--lr 3e-4 --warmup-epochs 5", "cpu": "--lr 3e-3 --warmup-epochs 1", "smoke": "-e 10 --lr 1e-2"}

    options = {"seed": Option("seed", 1337)}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def begin_task(self, ctx: TaskContext) -> None:
        super().begin_task(ctx)
        reinitialise(self.model, seeded_generator(self.seed, "retrain", ctx.task.index).initial_seed())

    def batches(self, ctx: TaskContext, loaders):
        """One pass over the remain subset; no forget data."""
        yield from ((remain, None) for remain in loaders["remain"])

    def compute_loss(self, remain, forget, step: StepInfo) -> dict[str, torch.Tensor]:
        logits, _ = self.model(*remain)
        ce = F.cross_entropy(logits.float(), remain[1])
        return {"remain_ce": ce, "total": ce}
