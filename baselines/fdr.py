"""FDR (Benjamin et al., ICLR 2019, function distance regularisation) adapted to forgetting (reference Sec. 2.5).

Per step (forget batch x_f with wrong labels y~_f, cycled remain batch x_r of B images)

    L = CE(z(x_f), y~_f) + lambda * (1/B) sum_i ||z(x_r,i) - z_t(x_r,i)||_2

z_t: the frozen pre-trained model's logits; the per-sample L2 norm is not squared."""
from typing import Dict

import torch
import torch.nn as nn

from baselines.common import TeacherMethod
from engine.method import METHODS


def logit_distance(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """(1/B) sum_i sqrt(sum_c (s_ic - t_ic)^2) over (B, C) student and teacher logits (zero gradient at a zero row)."""
    return torch.linalg.vector_norm(student_logits - teacher_logits, ord=2, dim=1).mean()


@METHODS.register("fdr")
class FDR(TeacherMethod):
    """Wrong-label fine-tuning on forget data, keeping the remain logits near the pre-trained model's."""

    name = "fdr"
    presets = {"paper": "--lr 1e-3 --FDR_lambda 50",
               "cpu": "--lr 1e-3 --FDR_lambda 50",
               "smoke": "-e 4 --lr 3e-3 --FDR_lambda 5"}

    def __init__(self, model: nn.Module, distance_weight: float = 0.1, **shared):
        super().__init__(model, **shared)
        self.distance_weight = distance_weight

    @classmethod
    def add_arguments(cls, parser) -> None:
        g = parser.add_argument_group("FDR")
        g.add_argument("--FDR_lambda", type=float, default=0.1,
                       help="weight of the mean L2 distance between the remain logits and the pre-trained model's")

    @classmethod
    def from_args(cls, model: nn.Module, args) -> "FDR":
        return cls(model, distance_weight=args.FDR_lambda, **cls.shared_kwargs(args))

    def teacher_terms(self, student, teacher, remain) -> Dict[str, torch.Tensor]:
        return {"logit_distance": self.distance_weight * logit_distance(student[0], teacher[0])}
