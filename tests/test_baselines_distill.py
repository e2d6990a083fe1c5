"""LwF, DER, DER++ and FDR: each loss term against plain formulas, the distillation property, tiny continual runs."""
import math
from types import SimpleNamespace

import pytest
import torch

import config
from baselines.common import distillation_kl
from baselines.der import DER, embedding_drift
from baselines.der_pp import DERPlusPlus
from baselines.fdr import FDR, logit_distance
from baselines.lwf import LwF
from engine.method import METHODS, StepInfo

STEP = StepInfo(0, 0, 0)


def test_distillation_kl_matches_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    t = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    T = 2.0
    expected = 0.0
    for si, ti in zip(s.tolist(), t.tolist()):
        p = [math.exp(v / T) for v in ti]
        q = [math.exp(v / T) for v in si]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        expected += sum(pc * (math.log(pc) - math.log(qc)) for pc, qc in zip(p, q))
    expected = T * T * expected / 2
    assert math.isclose(float(distillation_kl(s, t, T)), expected, rel_tol=1e-5)
    assert float(distillation_kl(t, t, T)) < 1e-7


def test_embedding_drift_is_summed_squared_frobenius():
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert math.isclose(float(embedding_drift(s, t)), 1 + 4 + 4 + 9)


def test_logit_distance_averages_unsquared_l2_norms_with_finite_gradient_at_zero():
    s = torch.tensor([[3.0, 4.0], [1.0, 1.0]], requires_grad=True)
    t = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    value = logit_distance(s, t)
    assert math.isclose(float(value.detach()), (5.0 + 0.0) / 2)
    value.backward()
    assert torch.isfinite(s.grad).all()
    assert torch.allclose(s.grad[0], torch.tensor([3.0, 4.0]) / 5.0 / 2)


def _batch(seed: int, n: int = 6):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=gen), torch.randint(0, 8, (n,), generator=gen)


def _ready(method):
    """A method outside the engine: evaluation mode (no dropout) and the context relabel() reads."""
    method.ctx = SimpleNamespace(num_classes=8)
    method.model.eval()
    return method


@pytest.mark.parametrize("cls, term", [(LwF, "distill"), (DER, "drift"), (FDR, "logit_distance")])
def test_distillation_term_is_zero_at_the_teacher_and_positive_after_the_student_moves(pretrained_model, cls, term):
    method = _ready(cls(pretrained_model))
    remain, forget = _batch(1), _batch(2)
    assert float(method.compute_loss(remain, forget, STEP)[term].detach()) < 1e-6
    with torch.no_grad():
        for p in pretrained_model.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    losses = method.compute_loss(remain, forget, STEP)
    assert float(losses[term].detach()) > 1e-3
    losses["total"].backward()  # the term reaches the student (the original LwF's KD had no gradient: bug 3)
    assert all(p.grad is None for p in method.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in pretrained_model.backbone.parameters())


def test_forget_term_uses_wrong_labels(pretrained_model):
    method = _ready(DER(pretrained_model))
    seen = []
    method.relabel = lambda labels: seen.append(labels) or (labels + 1) % 8
    forget = _batch(2)
    losses = method.compute_loss(_batch(1), forget, STEP)
    logits, _ = pretrained_model(forget[0], (forget[1] + 1) % 8)
    expected = -torch.log_softmax(logits, 1).gather(1, ((forget[1] + 1) % 8)[:, None]).mean()
    assert torch.allclose(losses["forget"], expected, atol=1e-5)
    assert torch.equal(seen[0], forget[1])


def test_der_pp_adds_cross_entropy_on_the_next_remain_batch(pretrained_model):
    method = _ready(DERPlusPlus(pretrained_model, drift_weight=0.1, replay_weight=0.3))
    method.next_remain = _batch(3)
    losses = method.compute_loss(_batch(1), _batch(2), STEP)
    logits, _ = pretrained_model(*method.next_remain)
    ce = -torch.log_softmax(logits, 1).gather(1, method.next_remain[1][:, None]).mean()
    assert torch.allclose(losses["replay"], 0.3 * ce, atol=1e-5)
    assert torch.allclose(losses["total"], losses["forget"] + losses["drift"] + losses["replay"])


def test_forget_pass_pairing_and_der_pp_next_remain(pretrained_model):
    method = DERPlusPlus(pretrained_model)
    ctx = SimpleNamespace(to_device=lambda batch: batch)
    loaders = {"forget": ["f1", "f2"], "remain_cycle": iter(["r1", "r2", "r3", "r4", "r5"])}
    pairs = []
    for remain, forget in method.batches(ctx, loaders):
        pairs.append((remain, forget, method.next_remain))
    assert pairs == [("r1", "f1", "r2"), ("r3", "f2", "r4")]


@pytest.mark.parametrize("argv, name, attrs", [
    (["--Lwf", "--Lwf_lambda_remain", "10", "--replay"], "lwf",
     {"temperature": 2.0, "kd_weight": 0.5, "remain_weight": 10.0}),
    (["--Der", "--DER_lambda", "0.01", "--replay"], "der", {"drift_weight": 0.01}),
    (["--Der", "--DER_lambda", "0.05", "--DER_plus", "--DER_plus_lambda", "0.005"], "der_pp",
     {"drift_weight": 0.05, "replay_weight": 0.005}),
    (["--FDR", "--FDR_lambda", "50", "--ffn_open"], "fdr", {"distance_weight": 50.0, "train_head": True}),
])
def test_original_switches_map_to_method_and_hyper_parameters(pretrained_model, argv, name, attrs):
    args = config.parse_args("x", argv=argv)
    assert args.method == name
    method = METHODS.get(name).from_args(pretrained_model, args)
    assert method.name == name
    for key, value in attrs.items():
        assert getattr(method, key) == value, key


def test_defaults_follow_the_original(pretrained_model):
    args = config.parse_args("x", argv=["--method", "der_pp"])
    assert (args.Lwf_T, args.Lwf_lambda_kd, args.Lwf_lambda_remain) == (2.0, 0.5, 1.0)
    assert (args.DER_lambda, args.DER_plus_lambda, args.FDR_lambda) == (0.1, 0.1, 0.1)


@pytest.mark.parametrize("name, kw", [
    ("lwf", {"kd_weight": 0.5, "remain_weight": 1.0}),
    ("der", {"drift_weight": 0.1}),
    ("der_pp", {"drift_weight": 0.1, "replay_weight": 0.5}),
    ("fdr", {"distance_weight": 1.0}),
])
def test_two_task_run_forgets_and_retains(run_tiny, pretrained_model, name, kw):
    backbone_params = sum(p.numel() for p in pretrained_model.backbone.parameters())
    results = run_tiny(name, settings_kw={"epochs": 4, "lr": 3e-3}, **kw)
    for task in results["tasks"]:
        assert task["trainable_params"] == backbone_params
        assert task["acc_f"] < task["acc_f_before"], task
    task0 = results["tasks"][0]
    assert task0["acc_f"] < task0["acc_f_before"] - 30, task0
    assert task0["acc_r"] > task0["acc_r_before"] - 25, task0
