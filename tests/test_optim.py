"""The one optimizer and schedule factory: weight decay on matrices only, betas and momentum reach the optimizer,
and the cosine schedule per epoch or, with a step budget, per optimizer step (values against the formula)."""
import math

import pytest
import torch

from engine.optim import OptimConfig, create_optimizer, create_optimizer_and_scheduler
from util.errors import UserError


def params():
    return [torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(3))]


def test_weight_decay_on_matrices_only_and_betas_reach_adamw():
    optimizer = create_optimizer(params(), OptimConfig(weight_decay=0.05, opt_betas=[0.8, 0.95]))
    decays = sorted((g["weight_decay"], tuple(p.ndim for p in g["params"])) for g in optimizer.param_groups)
    assert decays == [(0.0, (1,)), (0.05, (2,))]
    assert all(g["betas"] == (0.8, 0.95) for g in optimizer.param_groups)


def test_momentum_reaches_sgd_and_an_unbuildable_optimizer_is_a_user_error():
    optimizer = create_optimizer(params(), OptimConfig(opt="sgd", momentum=0.7))
    assert all(g["momentum"] == 0.7 for g in optimizer.param_groups)
    with pytest.raises(UserError, match="--opt"):
        create_optimizer(params(), OptimConfig(opt="no_such_optimizer"))


def cosine(t: float, horizon: float, lr: float, min_lr: float) -> float:
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t / horizon))


def test_per_epoch_schedule_follows_warm_up_then_cosine():
    cfg = OptimConfig(lr=0.1, min_lr=0.001, warmup_epochs=2, warmup_lr=0.01, epochs=10)
    optimizer, scheduler = create_optimizer_and_scheduler(params(), cfg, epochs=10)
    seen = []
    for epoch in range(10):
        scheduler.step(epoch)
        scheduler.step_update(epoch * 5)  # a no-op per epoch
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen[1] == pytest.approx(0.01 + 1 * (0.1 - 0.01) / 2)
    assert seen[6] == pytest.approx(cosine(6, 10, 0.1, 0.001))


def test_step_budget_lays_the_schedule_over_the_steps():
    cfg = OptimConfig(lr=0.1, min_lr=0.001, warmup_epochs=2, warmup_lr=0.01, epochs=10)
    optimizer, scheduler = create_optimizer_and_scheduler(params(), cfg, epochs=10, steps=40)  # warm-up: 8 steps
    scheduler.step(3)  # per-epoch stepping changes nothing under a step budget
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    scheduler.step_update(4)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 + 4 * (0.1 - 0.01) / 8)
    scheduler.step_update(30)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(cosine(30, 40, 0.1, 0.001))
