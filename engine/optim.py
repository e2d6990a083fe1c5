"""The one optimizer and learning-rate schedule factory, shared by pre-training and every forgetting method: timm's
factories as in the original (decoupled weight decay on matrices only, linear warm-up, one cosine cycle per epoch)."""
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler

from util.errors import UserError


@dataclass
class OptimConfig:
    """What the optimizer and cosine scheduler need, per task (or for pre-training)."""

    opt: str = "adamw"
    lr: float = 5e-4
    weight_decay: float = 0.05
    opt_eps: float = 1e-8
    opt_betas: list[float] | None = None
    momentum: float = 0.9
    epochs: int = 100
    min_lr: float = 1e-5
    warmup_epochs: int = 0
    warmup_lr: float = 1e-6


def create_optimizer(params: Iterable[nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """A fresh timm optimizer over the parameters that require gradients; weight decay on matrices only."""
    params = [p for p in params if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": optim.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    extra = {"betas": tuple(optim.opt_betas)} if optim.opt_betas else {}
    if optim.opt in ("sgd", "momentum", "nesterov"):
        extra["momentum"] = optim.momentum
    try:
        return create_optimizer_v2([g for g in groups if g["params"]], opt=optim.opt, lr=optim.lr,
                                   weight_decay=optim.weight_decay, eps=optim.opt_eps, **extra)
    except (ValueError, ImportError) as err:  # a name timm lists but cannot build here (a missing package)
        raise UserError(f"--opt {optim.opt} cannot be built here ({err}); pick another timm optimizer") from None


def create_optimizer_and_scheduler(params: Iterable[nn.Parameter], optim: OptimConfig, epochs: int,
                                   steps: int | None = None) -> tuple[torch.optim.Optimizer, CosineLRScheduler]:
    """The optimizer, and a linear warm-up from ``warmup_lr`` over ``warmup_epochs``, then one cosine cycle over
    ``epochs`` to ``min_lr``; with ``steps`` (--steps_per_task) the same shape over the steps, updated after each."""
    optimizer = create_optimizer(params, optim)
    warmup = round(steps * optim.warmup_epochs / max(1, epochs)) if steps else optim.warmup_epochs
    return optimizer, CosineLRScheduler(optimizer, t_initial=steps or epochs, lr_min=optim.min_lr, warmup_t=warmup,
                                        warmup_lr_init=optim.warmup_lr, t_in_epochs=not steps)
