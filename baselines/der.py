"""DER (Buzzega et al., NeurIPS 2020) adapted to forgetting: wrong labels on forget data, embedding replay on remain.

    L = CE(z(x_f), y~_f) + lambda * ||e(x_r) - e_t(x_r)||_F^2                    (reference Sec. 2.5)

x_f: a forget batch with wrong labels y~_f, x_r a cycled remain batch, e the embedding (e_t the frozen pre-trained
model's); summed over the batch, not averaged, as in the original."""

import torch

from baselines.common import TeacherMethod
from engine.method import METHODS, Option


def embedding_drift(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """sum_i sum_d (e_id - e_t,id)^2 over (B, D) student and teacher embeddings: squared Frobenius distance, summed."""
    return (student_emb - teacher_emb).pow(2).sum()


@METHODS.register("der")
class DER(TeacherMethod):
    """Wrong-label fine-tuning on forget data, pulling remain embeddings to the pre-trained model's."""

    name = "der"
    presets = {"paper": "--lr 1e-3 --DER_lambda 0.01", "cpu": "--lr 1e-3 --DER_lambda 0.01", "smoke": "-e 4 --lr 3e-3"}

    group = "DER / DER++"
    options = {**TeacherMethod.options, "drift_weight": Option(
        "DER_lambda", 0.1, "weight of the summed squared embedding distance to the pre-trained model on remain data")}

    def teacher_terms(self, student, teacher, remain) -> dict[str, torch.Tensor]:
        return {"drift": self.drift_weight * embedding_drift(student[1], teacher[1])}
