"""LIRF (Ye et al., ECCV 2022, "Learning with Recoverable Forgetting") as run by the GS-LoRA papers (reference 2.5).

The backbone splits after depth//2 blocks: the student is the trained lower half, the frozen upper half, norm and head
the shared ``up``, the teacher the frozen pre-trained model, the deposit a trained copy of the pre-trained lower half.

    L = (1-a) CE(up(s(x_f)), y~_f) - 300 AT(s(x_f), t(x_f)) + 10 a T^2 KL(t[:, R] || s[:, R])
        + 0.05 [a T^2 KL(t[:, F] || d[:, F]) + (1-a) CE(d, y~_f)] + 5 CE(up(s(x_r)), y_r)

with s/t/d the margin logits up(.) of the student/teacher/deposit lower-half tokens at the batch labels, y~_f wrong
labels, KL on temperature-T softmaxes (batch mean), R the task's remaining and F its forget classes."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import FineTuneMethod, distillation_kl
from engine.method import METHODS, Option, StepInfo, TaskContext, frozen_copy

AT_WEIGHT, REMAIN_KL_WEIGHT, DEPOSIT_WEIGHT, REMAIN_CE_WEIGHT = 300.0, 10.0, 0.05, 5.0  # fixed in the original


def attention_map(tokens: torch.Tensor, threshold: float = 0.005) -> torch.Tensor:
    """(B, N, D) tokens -> (B, D): L2-normalised (over D) mean over the N tokens of x^2; entries < threshold -> 0."""
    # Axes of the reference text: the original's x.pow(2).mean(1) on (B, 197, 512) token features.
    a = F.normalize(tokens.pow(2).mean(dim=1), dim=1)
    return torch.where(a < threshold, torch.zeros_like(a), a)


def attention_transfer(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """AT(x, y) = mean((a(x) - a(y))^2) over batch and channels; tokens (B, N, D) each -> scalar."""
    return (attention_map(student) - attention_map(teacher)).pow(2).mean()


def upper_logits(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor, start: int) -> torch.Tensor:
    """Margin logits (B, C) of a Classifier from lower-half tokens: blocks[start:], CLS pooling, norm, head."""
    for block in model.backbone.blocks[start:]:
        tokens = block(tokens)
    return model.head(model.backbone.norm(tokens[:, 0]), labels)


@METHODS.register("lirf")
class LIRF(FineTuneMethod):
    """LIRF; trains the lower half of the backbone and the deposit; reports the lower half as trainable."""

    name = "lirf"
    no_retain_refusal = None  # only its remain CE needs remain images; its remain-class KL is on forget images
    presets = {"paper": "--lr 1e-4", "cpu": "--lr 1e-3", "smoke": "-e 3 --lr 3e-3"}

    group = "LIRF"
    options = {"temperature": Option("LIRF_T", 10.0, "distillation temperature T"), "seed": Option("seed", 1337),
               "alpha": Option("LIRF_alpha", 0.1, "a: balances the CE and distillation terms")}

    def __init__(self, model: nn.Module, **options):
        super().__init__(model, **options)
        self.split = len(model.backbone.blocks) // 2
        self.teacher = frozen_copy(model)
        self.deposit = copy.deepcopy(model.backbone)  # only its lower half is used and trained
        self.deposit.blocks, self.deposit.norm = self.deposit.blocks[:self.split], nn.Identity()
        self.deposit.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Patch embedding, class token, position embedding (the backbone's stem) and the first ``split`` blocks."""
        vit = self.model.backbone
        return vit.stem_parameters() + [p for block in vit.blocks[:self.split] for p in block.parameters()]

    def optimized_parameters(self) -> list[nn.Parameter]:
        """The student's lower half and the deposit, snapshot together for selection."""
        # The original left the deposit out of its optimizer, so the deposit term changed nothing (its bug 4).
        return self.trainable_parameters() + list(self.deposit.parameters())

    def begin_task(self, ctx: TaskContext) -> None:
        super().begin_task(ctx)
        # Columns by class index: the original sliced [:split]/[split:] by position, wrong under the shuffled
        # class order (its bug 4).
        self.remain_cols = torch.tensor(ctx.task.remain, device=ctx.device)
        self.forget_cols = torch.tensor(ctx.task.forget, device=ctx.device)

    def compute_loss(self, remain, forget, step: StepInfo) -> dict[str, torch.Tensor]:
        """The terms of L; without a remain batch (--no_retain) the remain CE is absent, the rest stays."""
        a, temp = self.alpha, self.temperature
        # The frozen upper half runs without dropout, as the original's frozen 'up' model in eval mode. Set at every
        # step: the engine's evaluations put the whole model back in train mode.
        self.model.backbone.blocks[self.split:].eval()
        wrong = self.relabel(forget[1])
        images, labels = forget[0], wrong
        if remain is not None:
            images, labels = torch.cat([remain[0], images]), torch.cat([remain[1], labels])
        n = len(images) - len(wrong)
        tokens = self.model.backbone.tokens(images, self.split)
        logits = upper_logits(self.model, tokens, labels, self.split).float()
        s, s_tokens = logits[n:], tokens[n:]
        with torch.no_grad():
            t_tokens = self.teacher.backbone.tokens(forget[0], self.split)
            t = upper_logits(self.teacher, t_tokens, wrong, self.split).float()
        d = upper_logits(self.model, self.deposit.tokens(forget[0], self.split), wrong, self.split).float()
        r, f = self.remain_cols, self.forget_cols
        losses = {"forget_ce": (1 - a) * F.cross_entropy(s, wrong),
                  "attention": -AT_WEIGHT * attention_transfer(s_tokens.float(), t_tokens.float()),
                  "remain_kl": REMAIN_KL_WEIGHT * a * distillation_kl(s[:, r], t[:, r], temp),
                  "deposit": DEPOSIT_WEIGHT * (a * distillation_kl(d[:, f], t[:, f], temp)
                                               + (1 - a) * F.cross_entropy(d, wrong))}
        if remain is not None:
            losses["remain_ce"] = REMAIN_CE_WEIGHT * F.cross_entropy(logits[:n], remain[1])
        losses["total"] = sum(losses.values())
        return losses

    def state_dict(self) -> dict[str, object]:
        return {"deposit": {k: v.cpu() for k, v in self.deposit.state_dict().items()}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.deposit.load_state_dict(state["deposit"])
