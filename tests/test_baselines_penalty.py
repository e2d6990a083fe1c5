"""L2, EWC and MAS: the weighted penalty and both importances against hand computations, the term bookkeeping
across tasks, the per-step objective, resume state, the original switches and a tiny two-task run each."""
import contextlib
import copy
import io
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import config
from baselines.ewc import EWC, fisher_importance
from baselines.l2 import L2, weighted_penalty
from baselines.mas import MAS, mas_importance
from data.folders import ImageTensors, subset_indices
from data.task_plan import plan_tasks
from engine.method import METHODS, TaskContext
from engine.optim import OptimConfig


class LinearNet(nn.Module):
    """z = s * x W^T: gradients of CE and of mean(z^2) have closed forms. Records the mode of each forward."""

    def __init__(self, weight: torch.Tensor, scale: float):
        super().__init__()
        self.weight, self.scale, self.modes = nn.Parameter(weight.clone()), scale, []

    def forward(self, x, labels=None):
        self.modes.append(self.training)
        return self.scale * x @ self.weight.T, x


def tiny_batches():
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, generator=gen), torch.tensor([0, 1, 1, 0])),
            (torch.randn(2, 3, generator=gen), torch.tensor([1, 0]))]


def test_weighted_penalty_matches_hand_computation():
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    terms = [{"anchor": [torch.tensor([0.0, 2.0]), torch.tensor([[1.0]])],
              "importance": [torch.tensor([2.0, 5.0]), torch.tensor([[0.5]])]},
             {"anchor": [torch.tensor([1.0, 1.0]), torch.tensor([[3.0]])],
              "importance": [torch.tensor([1.0, 3.0]), torch.tensor([[1.0]])]}]
    # term 0: 2*1 + 5*0 + 0.5*4 = 4; term 1: 0 + 3*1 + 0 = 3
    assert math.isclose(float(weighted_penalty(params, terms)), 7.0)
    assert float(weighted_penalty(params, [])) == 0.0


def test_penalty_is_zero_at_anchor_and_grows_with_importance_and_distance():
    anchor = [torch.tensor([0.5, -1.0])]
    term = lambda w: {"anchor": anchor, "importance": [torch.full((2,), w)]}  # noqa: E731
    assert float(weighted_penalty([anchor[0].clone()], [term(3.0)])) == 0.0
    near, far = [anchor[0] + 0.1], [anchor[0] + 0.2]
    assert float(weighted_penalty(near, [term(2.0)])) > float(weighted_penalty(near, [term(1.0)])) > 0
    assert float(weighted_penalty(far, [term(1.0)])) > float(weighted_penalty(near, [term(1.0)]))


def test_fisher_importance_matches_closed_form_and_uses_eval_mode():
    weight, scale = torch.randn(2, 3, generator=torch.Generator().manual_seed(1)), 4.0
    model = LinearNet(weight, scale).train()
    got = fisher_importance(model, [model.weight], tiny_batches(), torch.device("cpu"), contextlib.nullcontext)[0]
    expected = torch.zeros_like(weight)
    for x, y in tiny_batches():
        p = torch.softmax(scale * x @ weight.T, 1)
        grad = scale * (p - F.one_hot(y, 2).float()).T @ x / len(y)  # d mean CE / dW
        expected += len(y) * grad ** 2
    torch.testing.assert_close(got, expected / 2)
    assert model.modes == [False, False] and model.training


def test_mas_importance_matches_closed_form():
    weight, scale = torch.randn(2, 3, generator=torch.Generator().manual_seed(2)), 4.0
    model = LinearNet(weight, scale)
    got = mas_importance(model, [model.weight], tiny_batches(), torch.device("cpu"), contextlib.nullcontext)[0]
    expected = torch.zeros_like(weight)
    for x, _ in tiny_batches():
        z = scale * x @ weight.T
        expected += (2.0 / z.numel() * scale * z.T @ x).abs()  # d mean(z^2) / dW
    torch.testing.assert_close(got, expected / 2)


def make_ctx(data, index: int, train=None) -> TaskContext:
    task = plan_tasks(list(range(8)), 6, 2, 2)[index]
    remain = subset_indices(data.train, task.remain, data.train_idx)
    forget = subset_indices(data.train, task.forget, data.train_idx)
    return TaskContext(task, train or data.train, remain, forget, 16, torch.device("cpu"), False, 0, 8, 1,
                       OptimConfig(epochs=1))


def shift_trainable(method, delta: float) -> None:
    with torch.no_grad():
        for p in method.trainable_parameters():
            p.add_(delta)


@pytest.mark.parametrize("online", [False, True])
def test_terms_accumulate_per_task_or_stay_single_online(tiny_data, pretrained_model, online):
    method = L2(pretrained_model, penalty_weight=0.5, online=online)
    method.begin_task(make_ctx(tiny_data, 0))
    shift_trainable(method, 0.1)
    method.begin_task(make_ctx(tiny_data, 1))
    params = method.trainable_parameters()
    assert len(method.terms) == (1 if online else 2)
    assert all(torch.equal(a, p) for a, p in zip(method.terms[-1]["anchor"], params))
    n = sum(p.numel() for p in params)
    expected = 0.0 if online else 0.01 * n  # importance 1, every entry 0.1 away from the task-0 anchor
    with torch.no_grad():
        penalty = float(weighted_penalty(params, method.terms))
    assert math.isclose(penalty, expected, rel_tol=1e-4, abs_tol=1e-9)
    # Online: the one term's importance is the sum over tasks (1 + 1 for L2), not the last task's alone.
    assert all(torch.all(w == (2.0 if online else 1.0)) for w in method.terms[-1]["importance"])


def test_importance_sees_only_the_remain_subset(tiny_data, pretrained_model):
    ctx = make_ctx(tiny_data, 0)
    scrambled = tiny_data.train.images.clone()
    outside = torch.ones(len(scrambled), dtype=torch.bool)
    outside[ctx.remain_idx] = False
    scrambled[outside] = torch.randint(0, 256, scrambled[outside].shape, dtype=torch.uint8)
    other = ImageTensors(scrambled, tiny_data.train.targets, tiny_data.train.classes)
    for cls in (EWC, MAS):
        a, b = cls(copy.deepcopy(pretrained_model)), cls(copy.deepcopy(pretrained_model))
        a.begin_task(ctx)
        b.begin_task(make_ctx(tiny_data, 0, train=other))
        for x, y in zip(a.terms[0]["importance"], b.terms[0]["importance"]):
            torch.testing.assert_close(x, y)
        assert sum(float(w.sum()) for w in a.terms[0]["importance"]) > 0


@pytest.mark.parametrize("replay", [True, False])
def test_objective_is_wrong_label_ce_plus_weighted_penalty(tiny_data, pretrained_model, replay):
    method = MAS(pretrained_model, penalty_weight=3.0, replay=replay)
    ctx = make_ctx(tiny_data, 0)
    method.begin_task(ctx)
    method.relabel = lambda y: (y + 1) % 8
    shift_trainable(method, 0.01)
    remain, forget = next(iter(ctx.loader(ctx.remain_idx, "r"))), next(iter(ctx.loader(ctx.forget_idx, "f")))
    images, labels = forget[0], (forget[1] + 1) % 8
    if replay:
        images, labels = torch.cat([remain[0], images]), torch.cat([remain[1], labels])
    with torch.no_grad():
        losses = method.compute_loss(remain if replay else None, forget, None)
        ce = F.cross_entropy(pretrained_model(images, labels)[0], labels)
        params = method.trainable_parameters()
        penalty = sum(float((w * 1e-4).sum()) for w in method.terms[0]["importance"])
    assert math.isclose(float(losses["ce"]), float(ce), rel_tol=1e-5)
    assert math.isclose(float(losses["penalty"]), 3.0 * penalty, rel_tol=1e-3)
    assert math.isclose(float(losses["total"]), float(ce) + 3.0 * penalty, rel_tol=1e-3)
    assert len(params) == len(method.terms[0]["anchor"])


def test_state_dict_round_trip_restores_terms(tiny_data, pretrained_model):
    method = EWC(pretrained_model, penalty_weight=2.0)
    method.begin_task(make_ctx(tiny_data, 0))
    shift_trainable(method, 0.05)
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    resumed = EWC(pretrained_model, penalty_weight=2.0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    params = method.trainable_parameters()
    with torch.no_grad():
        assert math.isclose(float(weighted_penalty(params, resumed.terms)),
                            float(weighted_penalty(params, method.terms)), rel_tol=1e-6)
    resumed.begin_task(make_ctx(tiny_data, 1))
    assert len(resumed.terms) == 2


@pytest.mark.parametrize("argv, method, weight, replay, online", [
    (["--ewc", "--ewc_lambda", "10", "--replay"], "ewc", 10.0, True, False),
    (["--l2", "--l2_lambda", "0.05", "--online"], "l2", 0.05, False, True),
    (["--MAS", "--mas_lambda", "5"], "mas", 5.0, False, False),
    (["--method", "mas"], "mas", 0.1, False, False),
])
def test_original_switches_map_to_method_and_weight(pretrained_model, argv, method, weight, replay, online):
    args = config.parse_args("x", argv=argv)
    assert args.method == method
    built = METHODS.get(args.method).from_args(pretrained_model, args)
    assert (built.name, built.penalty_weight, built.replay, built.online) == (method, weight, replay, online)


@pytest.mark.parametrize("name, replay", [("l2", True), ("ewc", True), ("mas", False)])
def test_two_task_run_forgets(run_tiny, pretrained_model, name, replay):
    backbone_params = sum(p.numel() for p in pretrained_model.backbone.parameters())
    results = run_tiny(name, penalty_weight=1.0, replay=replay, settings_kw={"epochs": 3, "lr": 3e-3})
    for task in results["tasks"]:
        assert task["trainable_params"] == backbone_params
        assert all(math.isfinite(task[k]) for k in ("acc_f", "acc_r"))
    task = results["tasks"][0]
    assert task["acc_f"] < task["acc_f_before"] - 30, task
    if replay:  # the remain data keeps the remembered classes; forget-only fine-tuning loses them too
        assert task["acc_r"] > task["acc_r_before"] - 25, task
