"""SCRUB (Kurmanji et al., NeurIPS 2023) and SCRUB-S (SCRUB with rho > 0), as in reference Sec. 2.5.

Max step, forget batch (true labels): L = -KD(s(x_f), t(x_f)) + rho * sum_n ||theta_n - theta_swa,n||_F
Min step, remain batch: L = gamma * CE(z(x_r), y_r) + alpha_s * KD(s(x_r), t(x_r)) + rho * sum_n ||...||_F
KD distils the pre-trained teacher's margin logits at temperature T. A super-epoch has 10 inner epochs: 0-4 run a
forget pass of max steps then a remain pass of min steps, 5-9 a remain pass only; ``-e`` is ignored."""
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import FineTuneMethod, distillation_kl
from engine.method import METHODS, Option, StepInfo, TaskContext, frozen_copy

INNER_EPOCHS, MAX_EPOCHS = 10, 5


def swa_distance(params: Iterable[torch.Tensor], averaged: Iterable[torch.Tensor]) -> torch.Tensor:
    """sum_n ||theta_n - theta_swa,n||_F (norms, not squared) over matching tensors -> scalar."""
    return sum(torch.linalg.vector_norm(p - a) for p, a in zip(params, averaged))


class ScrubLRDecay:
    """lr = lr0 * 0.1^(milestones passed by e = 15 * super-epoch + inner epoch), lr0 the optimizer's initial lr; the 15
    is the original's quirk, kept (milestone 100 decays super-epochs 7-9)."""

    # The original decayed from --lr, not lr0; its scripts set both to 1e-4.
    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, milestones: list[int]):
        self.optimizer, self.base_lr, self.milestones = optimizer, base_lr, milestones

    def step_update(self, num_updates: int) -> None:
        """The decay is per epoch; nothing changes between steps."""

    def step(self, epoch: int) -> None:
        counter = 15 * (epoch // INNER_EPOCHS) + epoch % INNER_EPOCHS
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * 0.1 ** sum(counter > m for m in self.milestones)


@METHODS.register("scrub")
class SCRUB(FineTuneMethod):
    """SCRUB; the teacher is the pre-trained model and theta_swa an average of the trainable parameters."""

    name = "scrub"
    presets = {"paper": "--lr 1e-4 --opt adam --sgda_learning_rate 1e-4 --sgda_smoothing 0",
               "cpu": "--opt adam --sgda_learning_rate 1e-3 --sgda_smoothing 0 --SCRUB_superepoch 1",
               "smoke": "--opt adam --sgda_learning_rate 1e-3 --sgda_gamma 1 --SCRUB_superepoch 1 --selection last"}
    default_smoothing = 0.0
    no_retain_refusal = ("its min steps on remain images are all that guards the remembered classes; max steps "
                         "alone push the whole model away from the teacher")

    group = "SCRUB / SCRUB-S"
    options = {  # listed in the order of the flags in --help; smoothing None: the class's default_smoothing
        "smoothing": Option("sgda_smoothing", 0.0, "rho, weight of sum ||theta - theta_swa||_F; > 0 selects SCRUB-S"),
        "gamma": Option("sgda_gamma", 0.99, "gamma, weight of the remain CE (min step)"),
        "kd_alpha": Option("sgda_alpha", 0.001, "alpha_s, weight of the remain KD (min step)"),
        "lr": Option("sgda_learning_rate", 1e-4, "lr of the --opt adam/sgd/rmsp optimizer"),
        "momentum": Option("sgda_momentum", 0.9, "momentum with --opt sgd or rmsp"),
        "weight_decay": Option("sgda_weight_decay", 5e-4, "L2 weight decay of that optimizer"),
        "temperature": Option("kd_T", 2.0, "distillation temperature T"),
        "superepochs": Option("SCRUB_superepoch", 10, "super-epochs of 10 inner epochs (-e ignored)"),
        "decay_epoch": Option("scrub_decay_epoch", 100, "lr x0.1 past this inner-epoch count (15 a super-epoch)"),
        "opt_name": Option("opt", "adam"), **FineTuneMethod.options}

    def __init__(self, model: nn.Module, **options):
        super().__init__(model, **options)
        if options.get("smoothing") is None:
            self.smoothing = self.default_smoothing
        self._epoch = 0
        self.teacher = frozen_copy(model)
        self.swa, self.swa_updates = [p.detach().clone() for p in self.trainable_parameters()], 0

    @classmethod
    def check_arguments(cls, parser, args) -> None:
        if (args.sgda_smoothing > 0) != (cls.default_smoothing > 0):
            parser.error(f"--method {cls.name} needs --sgda_smoothing {'> 0' if cls.default_smoothing else '0'}")

    def begin_task(self, ctx: TaskContext) -> None:
        super().begin_task(ctx)
        self._epoch = 0  # the task's epoch, for ``batches`` (called once per epoch)

    def build_optimizer(self, ctx: TaskContext):
        """--opt adam/sgd/rmsp: torch's, with the --sgda_* settings; any other: the engine's (original behaviour)."""
        params = [p for p in self.trainable_parameters() if p.requires_grad]
        kind = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsp": torch.optim.RMSprop}.get(self.opt_name)
        if kind is None:
            return super().build_optimizer(ctx)[0], ScrubLRDecay(self.optimizer, ctx.optim.lr, [self.decay_epoch])
        momentum = {} if kind is torch.optim.Adam else {"momentum": self.momentum}
        self.optimizer = kind(params, lr=self.lr, weight_decay=self.weight_decay, **momentum)
        return self.optimizer, ScrubLRDecay(self.optimizer, self.lr, [self.decay_epoch])

    def num_epochs(self, ctx: TaskContext) -> int:
        return self.superepochs * INNER_EPOCHS

    def batches(self, ctx: TaskContext, loaders):
        """(None, forget) pairs are max steps, (remain, None) min steps; theta_swa moves after inner epoch 9."""
        inner, self._epoch = self._epoch % INNER_EPOCHS, self._epoch + 1
        if inner < MAX_EPOCHS:
            yield from ((None, forget) for forget in loaders["forget"])
        yield from ((remain, None) for remain in loaders["remain"])
        if inner == INNER_EPOCHS - 1:
            self.update_swa()

    @torch.no_grad()
    def update_swa(self) -> None:
        """The first update copies theta, later ones theta_swa <- 0.9 theta_swa + 0.1 theta (reference Sec. 2.5)."""
        weight = 1.0 if self.swa_updates == 0 else 0.1
        for a, p in zip(self.swa, self.trainable_parameters()):
            a.mul_(1.0 - weight).add_(p.detach(), alpha=weight)
        self.swa_updates += 1

    def compute_loss(self, remain, forget, step: StepInfo) -> dict[str, torch.Tensor]:
        """A max step when ``remain`` is None, else a min step."""
        images, labels = remain if forget is None else forget
        logits = self.model(images, labels)[0].float()
        with torch.no_grad():
            teacher = self.teacher(images, labels)[0].float()
        kd = distillation_kl(logits, teacher, self.temperature)
        losses = ({"forget_kd": -kd} if forget is not None else
                  {"remain_ce": self.gamma * F.cross_entropy(logits, labels), "remain_kd": self.kd_alpha * kd})
        if self.smoothing > 0:
            losses["smoothing"] = self.smoothing * swa_distance(self.trainable_parameters(), self.swa)
        losses["total"] = sum(losses.values())
        return losses

    def state_dict(self) -> dict[str, object]:
        return {"swa": [a.cpu() for a in self.swa], "swa_updates": self.swa_updates}  # theta_swa spans tasks

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.swa = [a.to(p.device) for a, p in zip(state["swa"], self.trainable_parameters())]
        self.swa_updates = int(state["swa_updates"])


@METHODS.register("scrub_s")
class SCRUBS(SCRUB):
    """SCRUB-S: SCRUB with the smoothing term on (rho > 0; the scripts use 0.05 or 0.1)."""

    name = "scrub_s"
    presets = {"paper": "--lr 1e-4 --opt adam --sgda_learning_rate 1e-4 --sgda_smoothing 0.1",
               "cpu": "--opt adam --sgda_learning_rate 1e-3 --sgda_smoothing 0.1 --SCRUB_superepoch 1",
               "smoke": "--opt adam --sgda_learning_rate 1e-3 --sgda_gamma 1 --sgda_smoothing 0.05 "
                        "--SCRUB_superepoch 1 --selection last"}
    default_smoothing = 0.05
