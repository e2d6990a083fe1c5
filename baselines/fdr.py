"""FDR (Benjamin et al., ICLR 2019, function distance regularisation) adapted to forgetting (reference Sec. 2.5).

Per step (forget batch x_f with wrong labels y~_f, cycled remain batch x_r of B images)

    L = CE(z(x_f), y~_f) + lambda * (1/B) sum_i ||z(x_r,i) - z_t(x_r,i)||_2

z_t: the frozen pre-trained model's logits; the per-sample L2 norm is not squared."""

import torch

from baselines.common import TeacherMethod
from engine.method import METHODS, Option


def logit_distance(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """(1/B) sum_i sqrt(sum_c (s_ic - t_ic)^2) over (B, C) student and teacher logits (zero gradient at a zero row)."""
    return torch.linalg.vector_norm(student_logits - teacher_logits, ord=2, dim=1).mean()


@METHODS.register("fdr")
class FDR(TeacherMethod):
    """Wrong-label fine-tuning on forget data, keeping the remain logits near the pre-trained model's."""

    name = "fdr"
    presets = {"paper": "--lr 1e-3 --FDR_lambda 50", "cpu": "--lr 1e-3 --FDR_lambda 50",
               "smoke": "-e 4 --lr 3e-3 --FDR_lambda 5"}

    group = "FDR"
    options = {**TeacherMethod.options, "distance_weight": Option(
        "FDR_lambda", 0.1, "weight of the mean L2 distance between the remain logits and the pre-trained model's")}

    def teacher_terms(self, student, teacher, remain) -> dict[str, torch.Tensor]:
        return {"logit_distance": self.distance_weight * logit_distance(student[0], teacher[0])}
