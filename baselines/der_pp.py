"""DER++ (Buzzega et al., NeurIPS 2020): DER plus cross-entropy on a second remain batch (reference Sec. 2.5).

    L = CE(z(x_f), y~_f) + lambda * ||e(x_r) - e_t(x_r)||_F^2 + lambda_plus * CE(z(x_r'), y_r')

x_r': the remain batch drawn right after x_r from the same cycled loader."""

import torch
import torch.nn.functional as F

from baselines.der import DER
from engine.method import METHODS, Option, StepInfo, TaskContext


@METHODS.register("der_pp")
class DERPlusPlus(DER):
    """DER with a replayed remain batch trained on its true labels."""

    name = "der_pp"
    presets = {"paper": "--lr 1e-3 --DER_lambda 0.005 --DER_plus_lambda 0.005",
               "cpu": "--lr 1e-3 --DER_lambda 0.005 --DER_plus_lambda 0.005", "smoke": "-e 4 --lr 3e-3"}

    group = "DER++"  # adds only --DER_plus_lambda; --DER_lambda comes from DER
    options = {**DER.options, "replay_weight": Option("DER_plus_lambda", 0.1,
                                                      "weight of the cross-entropy on the second remain batch")}
    next_remain = None

    def batches(self, ctx: TaskContext, loaders):
        """DER's pairs; before each is yielded, the next remain batch is kept on the device for the replay term."""
        for remain, forget in super().batches(ctx, loaders):
            self.next_remain = ctx.to_device(next(loaders["remain_cycle"]))
            yield remain, forget

    def compute_loss(self, remain, forget, step: StepInfo) -> dict[str, torch.Tensor]:
        losses = super().compute_loss(remain, forget, step)
        logits, _ = self.model(*self.next_remain)
        losses["replay"] = self.replay_weight * F.cross_entropy(logits.float(), self.next_remain[1])
        losses["total"] = losses["total"] + losses["replay"]
        return losses
