"""What the full fine-tuning baselines share: which parameters train, their shared flags, wrong forget labels.

The whole backbone trains, the head frozen (reference Sec. 1.7); ``--ffn_open`` (the original's misnomer) also trains
the head, ``--only_ffn`` only the feed-forward linears and the head."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from backbone.lora import FFN_TYPES
from data.subsets import seeded_generator
from engine.method import Method, Option, StepInfo, TaskContext, forward_pair, frozen_copy, wrong_labels


def add_shared_arguments(parser) -> None:
    """The flags every fine-tuning baseline reads; added once to the parser (config.py calls this)."""
    g = parser.add_argument_group("baselines (shared)")
    g.add_argument("--ffn_open", action="store_true", help="also train the classification head")
    g.add_argument("--only_ffn", action="store_true", help="train only the FFN linears (and the head)")
    g.add_argument("--replay", action="store_true", help="L2/EWC/MAS: also train on remain data, not forget data alone")
    g.add_argument("--online", action="store_true", help="EWC/MAS/L2: keep one penalty term instead of one per task")


class FineTuneMethod(Method):
    """A baseline that fine-tunes the backbone (or its FFN linears), optionally the head, with wrong forget labels."""

    options = {"train_head": Option("ffn_open", False), "only_ffn": Option("only_ffn", False),
               "seed": Option("seed", 1337)}

    def __init__(self, model: nn.Module, **options):
        super().__init__(model, **options)
        self.relabel_generator = torch.Generator()

    def trainable_parameters(self) -> list[nn.Parameter]:
        backbone = self.model.backbone
        params = ([p for m in backbone.modules() if isinstance(m, FFN_TYPES) for p in m.parameters()] if self.only_ffn
                  else list(backbone.parameters()))
        return params + (list(self.model.head.parameters()) if self.train_head or self.only_ffn else [])

    def begin_task(self, ctx: TaskContext) -> None:
        super().begin_task(ctx)
        self.relabel_generator = seeded_generator(self.seed, "relabel", ctx.task.index)

    def relabel(self, labels: torch.Tensor) -> torch.Tensor:
        # Over all other classes, seeded per task: the original drew them anew in [0, forget classes) (its bug 5).
        return wrong_labels(labels, self.ctx.num_classes, self.relabel_generator)


class TeacherMethod(FineTuneMethod):
    """Wrong-label CE on forget data plus ``teacher_terms`` keeping the remain outputs near the frozen pre-trained
    model's (LwF, DER, DER++, FDR); an epoch is a pass over the forget data, as in the original (reference 3.5)."""

    no_retain_refusal = ("its teacher terms on remain images are all that guards the remembered classes; without "
                         "them it is plain wrong-label fine-tuning (l2 without --replay adds a pull to earlier "
                         "weights)")

    def __init__(self, model: nn.Module, **options):
        super().__init__(model, **options)
        self.teacher = frozen_copy(model)

    def batches(self, ctx: TaskContext, loaders):
        yield from ((next(loaders["remain_cycle"]), forget) for forget in loaders["forget"])

    def teacher_terms(self, student: tuple[torch.Tensor, torch.Tensor], teacher: tuple[torch.Tensor, torch.Tensor],
                      remain) -> dict[str, torch.Tensor]:
        """Named losses on the remain batch from the student's and teacher's (logits, embeddings), float32."""
        raise NotImplementedError

    def compute_loss(self, remain, forget, step: StepInfo) -> dict[str, torch.Tensor]:
        wrong = self.relabel(forget[1])
        logits_r, logits_f, emb_r, _ = forward_pair(self.model, remain, (forget[0], wrong))
        with torch.no_grad():
            teacher_logits, teacher_emb = self.teacher(*remain)
        losses = {"forget": F.cross_entropy(logits_f.float(), wrong),
                  **self.teacher_terms((logits_r.float(), emb_r.float()),
                                       (teacher_logits.float(), teacher_emb.float()), remain)}
        losses["total"] = sum(losses.values())
        return losses


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * (1/B) sum_i sum_c p_ic [log p_ic - log q_ic], p = softmax(t/T), q = softmax(s/T), on (B, C) student and
    teacher logits: distillation whose gradient scale the T^2 keeps independent of T."""
    return temperature ** 2 * F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                                       F.log_softmax(teacher_logits / temperature, dim=1),
                                       reduction="batchmean", log_target=True)
