"""MAS (Aljundi et al., ECCV 2018): the L2 baseline with output-sensitivity importance (reference Sec. 2.5).

    Omega_n = (1/nb) sum_b | d mean_{i,c}(z_{i,c}^2) / d theta_n |

with z the margin logits (scale s included, true labels) of the task's remain subset, in eval mode."""

import torch
import torch.nn as nn

from baselines.l2 import L2, gradient_importance, penalty_option
from engine.method import METHODS, TaskContext


def mas_importance(model: nn.Module, params: list[nn.Parameter], batches, device: torch.device,
                   autocast) -> list[torch.Tensor]:
    """Omega_n = (1/nb) sum_b |d mean(z_b^2) / d theta_n|, one tensor per parameter (the batch size unweighted)."""
    return gradient_importance(model, params, batches, lambda logits, labels: logits.pow(2).mean(),
                               lambda grad, batch_size: grad.abs(), device, autocast)


@METHODS.register("mas")
class MAS(L2):
    """L2 with the MAS output-sensitivity importance."""

    name = "mas"
    presets = {"paper": "--lr 1e-4 --mas_lambda 0.005 --replay", "cpu": "--lr 1e-3 --mas_lambda 0.005 --replay",
               "smoke": "-e 3 --lr 3e-3 --mas_lambda 1 --replay"}
    group = "MAS (quadratic penalty)"
    options = {**L2.options, "penalty_weight": penalty_option("mas_lambda")}
    no_retain_refusal = "its output-sensitivity importance is measured on remain images (l2 runs without them)"

    def importance(self, ctx: TaskContext, params: list[nn.Parameter]) -> list[torch.Tensor]:
        return mas_importance(self.model, params, ctx.loader(ctx.remain_idx, "importance"), ctx.device, self.autocast)
