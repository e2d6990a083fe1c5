"""GS-LoRA (Zhao et al., CVPR 2024) and GS-LoRA++ (T-PAMI): group-sparse LoRA for continual forgetting.

Each task trains a fresh LoRA on the FFN linears of every block, minimising (reference Sec. 2.4)

    L = CE(z(x_r), y_r) + beta * ReLU(BND - CE(z(x_f), y_f))           data loss, hinge on the batch-mean CE
                                                                         (or beta * mean_i ReLU(BND - CE_i), ours)
        + alpha * sum_g ||theta_g||_2                                    group lasso, one group per block (default)
        + w_f * ReLU(BND_pro - KL_f) + w_r * KL_r                        GS-LoRA++ prototype loss
        + w_kd * T^2 KL(t(x_f)[:, K] || z(x_f)[:, K])                    opt-in retain-free anchor (--retain_kd)
        + w_rkd * T^2 KL(t(x_r)[:, K] || z(x_r)[:, K])                   opt-in retention on remain images (--remain_kd)

and merges the LoRA into the frozen weights when the task ends (its factors saved on their own). Ours, not the
papers': the last two terms (t the task's starting model, K the classes still remembered; the first, after LIRF's
remain-class KL, is an anchor for --no_retain), --BND auto|chance, --forget_hinge image and --project_forget.
"""
import argparse
import math
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.common import distillation_kl
from backbone.lora import (GROUPINGS, LORA_POSITIONS, inject_lora, lora_groups, lora_layers, mark_only_lora_trainable,
                           merge_lora, reset_lora)
from engine.evaluation import class_mean_embeddings
from engine.method import METHODS, Method, Option, StepInfo, TaskContext, forward_pair, frozen_copy
from util.errors import UserError


def bounded_forget_loss(ce_forget: torch.Tensor, bound: float) -> torch.Tensor:
    """ReLU(BND - CE_f), element-wise: pushes a forget cross-entropy up to the bound, and no further."""
    return F.relu(bound - ce_forget)


# Bounds named by what they mean rather than by a number, set per task from the head's class count C. They mean the
# same on any head, where a fixed BND does not (a softmax head's forget CE stops near 11, so the CPU presets' former
# BND 30 was never reached; CosFace logits at s 64 reach 105). auto, 2 ln C: the batch-mean forget CE at which the
# forget class's probability is, on average, 1/C^2, a factor C below chance. chance, ln C: the CE of a uniform
# prediction; per image (--forget_hinge image), each forget image pushed to chance.
NAMED_BOUNDS = {"auto": lambda classes: 2 * math.log(classes), "chance": lambda classes: math.log(classes)}


def bound_flag(text: str):
    """An argparse type for --BND: a number, or a name of ``NAMED_BOUNDS`` (set per task from the head's classes)."""
    if text.lower() in NAMED_BOUNDS:
        return text.lower()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, 'auto' or 'chance', got {text}")
    return value


def project_off_conflict(forget_grads: list[torch.Tensor], rest_grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """g_f - <g_f, g_r> / ||g_r||^2 * g_r where the forget gradient conflicts with the rest's (<g_f, g_r> < 0), else
    g_f: the rest of the loss is then unchanged to first order (one-sided PCGrad, Yu et al. 2020)."""
    dot = sum((f * r).sum() for f, r in zip(forget_grads, rest_grads))
    norm_sq = sum(r.pow(2).sum() for r in rest_grads)
    if dot >= 0 or norm_sq == 0:
        return forget_grads
    return [f - (dot / norm_sq) * r for f, r in zip(forget_grads, rest_grads)]


def group_norms(groups: Iterable[Iterable[torch.Tensor]]) -> torch.Tensor:
    """(G,) the L2 norm of each group's matrices, sqrt(sum_{P in g} ||P||_F^2); an all-zero group (a fresh B alone)
    gets gradient 0, torch.norm's subgradient, where sqrt's infinite one would make every gradient NaN."""
    squares = torch.stack([sum(p.pow(2).sum() for p in group) for group in groups])
    nonzero = squares > 0
    return torch.where(nonzero, torch.sqrt(torch.where(nonzero, squares, torch.ones_like(squares))), 0.0)


def group_lasso(groups: Iterable[Iterable[torch.Tensor]]) -> torch.Tensor:
    """sum_g ||theta_g||_2: the group norms summed (no sqrt|g| weight). Scalar."""
    return group_norms(groups).sum()


def prototype_kl(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p) || softmax(f)) over the embedding coordinates of (B, D) features f and their classes' prototypes
    p, averaged over the batch: (1/B) sum_i sum_k softmax(p_i)_k [log softmax(p_i)_k - log softmax(f_i)_k]."""
    return F.kl_div(F.log_softmax(features, dim=1), F.log_softmax(prototypes, dim=1), reduction="batchmean",
                    log_target=True)


def prototype_loss(kl_forget: torch.Tensor, kl_remain: torch.Tensor | None, w_forget: float, w_remain: float,
                   bound: float) -> dict[str, torch.Tensor]:
    """w_f * ReLU(BND_pro - KL_f) (forget pushed from prototypes) and w_r * KL_r (remain pulled; absent if None)."""
    terms = {"prototype_forget": w_forget * F.relu(bound - kl_forget)}
    if kl_remain is not None:
        terms["prototype_remain"] = w_remain * kl_remain
    return terms


# Where the forget hinge applies: to the batch-mean CE (the papers') or to each forget image's CE (ours).
FORGET_HINGES = ("batch", "image")

# Logged but not optimised: the batch-mean forget CE and the unweighted per-image hinge (what is left to forget).
LOGGED_ONLY = ("forget_ce", "forget_shortfall")

# The terms that push the forget images away, which --project_forget projects off the others where they conflict.
FORGET_TERMS = ("forget", "prototype_forget")

# The defaults of the ablation switches, which methods without LoRA refuse to change (config.py).
DEFAULTS = {"lora_pos": "FFN", "grouping": "block"}


@METHODS.register("gs_lora")
class GSLoRA(Method):
    """GS-LoRA; with ``prototype=True`` GS-LoRA++."""

    name = "gs_lora"
    no_retain_refusal = None  # the forget hinge, group lasso and forget prototype hinge need no remain image
    trains_lora = True
    presets = {"paper": "--lr 1e-2 --lora_rank 8 --BND 105 --alpha 1e-4",
               "cpu": "--lr 1e-2 --lora_rank 8 --forget_hinge image --BND chance --beta 0.5 --alpha 1e-3",
               "smoke": "-e 6 --lr 1e-2 --lora_rank 4 --BND 15 --beta 0.5 --alpha 1e-3"}
    group = "GS-LoRA / GS-LoRA++"
    options = {  # the defaults of the original's continual parser, in the order of the flags in --help
        "rank": Option("lora_rank", 8), "lora_alpha": Option("lora_alpha", 1.0),
        "bound": Option("BND", 10.0, "bound of the forget hinge ReLU(BND - CE_f); 'auto' = 2 ln C for C classes (a "
                        "factor C below chance), 'chance' = ln C; recorded per task", {"type": bound_flag}),
        "forget_hinge": Option("forget_hinge", "batch", "batch: the hinge on the batch-mean forget CE (the papers'); "
                               "image: one hinge per forget image (ours)", {"choices": FORGET_HINGES}),
        "beta": Option("beta", 0.03, "weight of the forget hinge (single value)"),
        "beta_list": Option("cl_beta_list", [], "forget-hinge weight per task (overrides --beta task by task)"),
        "alpha": Option("alpha", 0.1, "weight of the group-lasso (structure) loss"),
        "warmup_alpha": Option("warmup_alpha", False, "group-lasso weight 0 before --alpha_epoch, then --big_alpha"),
        "big_alpha": Option("big_alpha", 1e-4, "group-lasso weight after the warm-up (single-step default 5e-4)"),
        "alpha_epoch": Option("alpha_epoch", 20, "epochs without group lasso when warming up"),
        "beta_decay": Option("beta_decay", False, "forget-hinge weight --small_beta from epoch 50"),
        "small_beta": Option("small_beta", 1e-4, "forget-hinge weight after the decay"),
        "prototype": Option("prototype", False, "add the prototype loss (GS-LoRA++)"),
        "pro_f_weight": Option("pro_f_weight", 0.0, "w_f, weight of the forget prototype hinge"),
        "prof_list": Option("cl_prof_list", [], "w_f per task (overrides)"),
        "pro_r_weight": Option("pro_r_weight", 0.0, "w_r, weight of the remain prototype KL"),
        "bound_pro": Option("BND_pro", 18.0, "bound of the forget prototype hinge"),
        "retain_kd": Option("retain_kd", 0.0, "w_kd: weight of distilling the task's starting model's logits of the "
                            "remembered classes on forget images (ours; an anchor for --no_retain); 0 = off"),
        "retain_kd_T": Option("retain_kd_T", 4.0, "temperature T of --retain_kd and --remain_kd"),
        "remain_kd": Option("remain_kd", 0.0, "w_rkd: the same distillation on remain images (ours); 0 = off"),
        "project_forget": Option("project_forget", False, "project the forget terms' gradient off the others' where "
                                 "they conflict (ours; one-sided PCGrad; two backward passes a step)"),
        "lora_pos": Option("lora_pos", DEFAULTS["lora_pos"], "where LoRA goes: the FFN's two linears (the papers') or "
                           "the attention's qkv (ablation)", {"choices": sorted(LORA_POSITIONS)}),
        "grouping": Option("grouping", DEFAULTS["grouping"], "group-lasso groups: per block (the papers'), LoRA layer "
                           "or matrix", {"choices": GROUPINGS})}

    def __init__(self, model: nn.Module, **options):
        super().__init__(model, **options)
        self.bound_setting = self.bound
        self.bound = None if self.bound in NAMED_BOUNDS else self.bound  # a named bound is set per task (begin_task)
        self.prototypes: torch.Tensor | None = None
        try:
            inject_lora(model.backbone, self.rank, self.lora_alpha, self.lora_pos)
        except TypeError as error:
            raise UserError(f"--lora_pos {self.lora_pos}: {error}") from None
        mark_only_lora_trainable(model)

    @classmethod
    def check_arguments(cls, parser, args) -> None:
        for flag in ("cl_beta_list", "cl_prof_list"):
            values = getattr(args, flag)
            if values and len(values) != args.num_tasks:
                parser.error(f"--{flag} has {len(values)} values for {args.num_tasks} tasks; give one per task")
        if args.lora_rank < 1:
            parser.error(f"{cls.name} needs --lora_rank >= 1")
        if args.retain_kd < 0 or args.remain_kd < 0 or args.retain_kd_T <= 0:
            parser.error("--retain_kd and --remain_kd must be >= 0 and --retain_kd_T > 0")
        if args.no_retain and args.remain_kd > 0:
            parser.error("--remain_kd distils on remain images, but --no_retain loads none; use --retain_kd")
        if args.no_retain and args.pro_r_weight > 0:
            parser.error("--pro_r_weight pulls remain features to their prototypes, but --no_retain loads no remain "
                         "image; drop one of them")

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for layer in lora_layers(self.model) for p in (layer.lora_A, layer.lora_B)]

    def begin_task(self, ctx: TaskContext) -> None:
        super().begin_task(ctx)
        # The original re-initialises A with a = sqrt(50) from the second task on (a smaller start); kept.
        reset_lora(self.model, a=math.sqrt(5) if ctx.task.index == 0 else math.sqrt(50))
        self.task_beta = self.beta_list[ctx.task.index] if self.beta_list else self.beta
        named = NAMED_BOUNDS.get(self.bound_setting)
        self.bound = named(ctx.num_classes) if named else self.bound_setting
        self.task_w_f = self.prof_list[ctx.task.index] if self.prof_list else self.pro_f_weight
        if self.retain_kd or self.remain_kd:  # the model as the task finds it (B = 0: the fresh LoRA changes nothing)
            self.teacher = frozen_copy(self.model)
            self.kept_cols = torch.tensor(ctx.task.remain + ctx.task.missing, device=ctx.device)
        if self.prototype:  # class means of the loaded model; the original took the random network's (its bug 1)
            means = class_mean_embeddings(self.model, ctx.train, torch.cat([ctx.remain_idx, ctx.forget_idx]),
                                          5 * ctx.batch_size, ctx.device, ctx.amp)
            self.prototypes = torch.zeros(ctx.num_classes, next(iter(means.values())).numel(), device=ctx.device)
            self.prototypes[list(means)] = torch.stack(list(means.values())).to(ctx.device)

    def alpha_at(self, epoch: int) -> float:
        return (0.0 if epoch < self.alpha_epoch else self.big_alpha) if self.warmup_alpha else self.alpha

    def beta_at(self, epoch: int) -> float:
        return self.small_beta if self.beta_decay and epoch >= 50 else self.task_beta

    def compute_loss(self, remain, forget, step: StepInfo) -> dict[str, torch.Tensor]:
        """The named terms of L and their total; without a remain batch (--no_retain) the remain terms are absent."""
        logits_r, logits_f, emb_r, emb_f = forward_pair(self.model, remain, forget)
        losses = {} if remain is None else {"remain": F.cross_entropy(logits_r.float(), remain[1])}
        if self.forget_hinge == "image":
            ce_each = F.cross_entropy(logits_f.float(), forget[1], reduction="none")
            ce_f, hinge = ce_each.mean(), bounded_forget_loss(ce_each, self.bound).mean()
            losses["forget_shortfall"] = hinge.detach()
        else:
            ce_f = F.cross_entropy(logits_f.float(), forget[1])
            hinge = bounded_forget_loss(ce_f, self.bound)
        losses.update(forget_ce=ce_f.detach(), forget=self.beta_at(step.epoch) * hinge,
                      structure=self.alpha_at(step.epoch)
                      * group_lasso(lora_groups(self.model.backbone, self.grouping)))
        if self.prototype:
            kl_f = prototype_kl(emb_f.float(), self.prototypes[forget[1]])
            kl_r = None if remain is None else prototype_kl(emb_r.float(), self.prototypes[remain[1]])
            losses.update(prototype_loss(kl_f, kl_r, self.task_w_f, self.pro_r_weight, self.bound_pro))
        if self.retain_kd:
            losses["retain_kd"] = self.retain_kd * self.remembered_class_kl(logits_f, forget)
        if self.remain_kd and remain is not None:
            losses["remain_kd"] = self.remain_kd * self.remembered_class_kl(logits_r, remain)
        losses["total"] = sum(v for k, v in losses.items() if k not in LOGGED_ONLY)
        return losses

    def backward(self, losses: dict[str, torch.Tensor]) -> None:
        """With --project_forget: the forget terms' gradient projected off the others' (on conflict), plus theirs."""
        if not self.project_forget:
            return super().backward(losses)
        params = self.trainable_parameters()
        forget_side = sum(losses[k] for k in FORGET_TERMS if k in losses)
        forget_grads = torch.autograd.grad(forget_side, params, retain_graph=True)
        rest_grads = torch.autograd.grad(losses["total"] - forget_side, params)
        for p, f, r in zip(params, project_off_conflict(list(forget_grads), list(rest_grads)), rest_grads):
            p.grad = f + r

    def remembered_class_kl(self, logits: torch.Tensor, batch) -> torch.Tensor:
        """T^2 KL(t(x)[:, K] || z(x)[:, K]): the task's starting model t against ours on the remembered classes."""
        with torch.no_grad():
            teacher = self.teacher(*batch)[0].float()
        return distillation_kl(logits.float()[:, self.kept_cols], teacher[:, self.kept_cols], self.retain_kd_T)

    def forget_goal_met(self, losses: dict[str, float]) -> bool:
        """The forget hinge is satisfied: the forget CE has reached BND (per image: no shortfall left)."""
        return losses["forget_shortfall"] <= 0 if self.forget_hinge == "image" else losses["forget_ce"] >= self.bound

    def end_task(self, ctx: TaskContext) -> dict[str, object]:
        """Logs the per-block group norms, keeps the low-rank factors, merges the LoRA into the weights."""
        with torch.no_grad():
            groups = lora_groups(self.model.backbone, self.grouping)
            norms = group_norms(groups).tolist()
            frobenius_sums = [float(sum(torch.linalg.norm(p) for p in group)) for group in groups]
        factors = {name: p.detach().cpu().clone() for name, p in self.model.named_parameters() if "lora_" in name}
        ctx.artifacts["lora_delta"] = {"factors": factors, "scaling": self.lora_alpha / self.rank}
        merge_lora(self.model)
        self.teacher = None  # --retain_kd's and --remain_kd's starting model; the next task copies its own
        # group_norms: sqrt of the summed squares of a group's LoRA matrices, the norm the group lasso penalises;
        # group_norms_frobenius_sum: the sum of their Frobenius norms, what the original logged (norm_list).
        return {"group_norms": norms, "group_norms_frobenius_sum": frobenius_sums, "beta": self.task_beta,
                "bound": self.bound, "pro_f_weight": self.task_w_f if self.prototype else None}


@METHODS.register("gs_lora_pp")
class GSLoRAPlusPlus(GSLoRA):
    """GS-LoRA++: GS-LoRA with the prototype loss always on."""

    name = "gs_lora_pp"
    presets = {**GSLoRA.presets, "cpu": GSLoRA.presets["cpu"] + " --pro_f_weight 0.01 --BND_pro 18",
               "smoke": GSLoRA.presets["smoke"] + " --pro_f_weight 0.1"}

    @classmethod
    def from_args(cls, model: nn.Module, args) -> "GSLoRA":
        """GS-LoRA's flags, --prototype implied."""
        return super().from_args(model, argparse.Namespace(**{**vars(args), "prototype": True}))
