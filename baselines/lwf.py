"""LwF (Li & Hoiem, ECCV 2016) adapted to forgetting: wrong labels on forget data, distillation on remain data.

    L = CE(z(x_f), y~_f) + lambda_kd * T^2 * KL(softmax(z_t(x_r)/T) || softmax(z(x_r)/T)) + lambda_r * CE(z(x_r), y_r)

x_f: a forget batch with wrong labels y~_f, x_r a cycled remain batch; z_t the frozen pre-trained teacher; margin logits
throughout (reference Sec. 2.5). The original's KD term was identically zero (its bug 3); here it is the KL."""

import torch
import torch.nn.functional as F

from baselines.common import TeacherMethod, distillation_kl
from engine.method import METHODS, Option


@METHODS.register("lwf")
class LwF(TeacherMethod):
    """Wrong-label fine-tuning on forget data, distillation from the pre-trained model and CE on remain data."""

    name = "lwf"
    presets = {"paper": "--lr 1e-4 --Lwf_lambda_remain 10", "cpu": "--lr 1e-3 --Lwf_lambda_remain 10",
               "smoke": "-e 4 --lr 3e-3"}

    group = "LwF"
    options = {**TeacherMethod.options, "temperature": Option("Lwf_T", 2.0, "distillation temperature T (unitless)"),
               "kd_weight": Option("Lwf_lambda_kd", 0.5, "weight of the distillation term on remain data"),
               "remain_weight": Option("Lwf_lambda_remain", 1.0, "weight of the remain cross-entropy")}

    def teacher_terms(self, student, teacher, remain) -> dict[str, torch.Tensor]:
        # A real KL: the original took log of log-softmax values and zeroed the NaNs, so its KD was 0 (its bug 3).
        return {"distill": self.kd_weight * distillation_kl(student[0], teacher[0], self.temperature),
                "remain": self.remain_weight * F.cross_entropy(student[0], remain[1])}
