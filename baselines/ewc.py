"""EWC (Kirkpatrick et al., PNAS 2017): the L2 baseline with empirical-Fisher importance (reference Sec. 2.5).

    F_n = (1/nb) sum_b |b| (d CE_b / d theta_n)^2

CE_b: the batch-mean cross-entropy of the margin logits (true labels) on the task's remain subset, in eval mode."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.l2 import L2, gradient_importance, penalty_option
from engine.method import METHODS, TaskContext


def fisher_importance(model: nn.Module, params: list[nn.Parameter], batches, device: torch.device,
                      autocast) -> list[torch.Tensor]:
    """Empirical Fisher diagonal F_n = (1/nb) sum_b |b| (d CE_b / d theta_n)^2, one tensor per parameter."""
    return gradient_importance(model, params, batches, F.cross_entropy, lambda grad, size: grad.pow(2) * size, device,
                               autocast)


@METHODS.register("ewc")
class EWC(L2):
    """L2 with the empirical Fisher as importance."""

    name = "ewc"
    presets = {"paper": "--lr 1e-4 --ewc_lambda 10 --replay", "cpu": "--lr 1e-3 --ewc_lambda 10 --replay",
               "smoke": "-e 3 --lr 3e-3 --ewc_lambda 1 --replay"}
    group = "EWC (quadratic penalty)"
    options = {**L2.options, "penalty_weight": penalty_option("ewc_lambda")}
    no_retain_refusal = "its Fisher importance is measured on remain images (l2 runs without them)"

    def importance(self, ctx: TaskContext, params: list[nn.Parameter]) -> list[torch.Tensor]:
        return fisher_importance(self.model, params, ctx.loader(ctx.remain_idx, "importance"), ctx.device,
                                 self.autocast)
