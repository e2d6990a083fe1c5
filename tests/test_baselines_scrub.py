"""SCRUB and SCRUB-S: loss terms against hand formulas, the schedule, the max step, theta_swa, flags, a tiny run."""
import math

import pytest
import torch

import config
from baselines.common import distillation_kl
from baselines.scrub import SCRUB, SCRUBS, ScrubLRDecay, swa_distance
from data.folders import subset_indices
from data.task_plan import plan_tasks
from engine.method import METHODS, StepInfo, TaskContext
from engine.optim import OptimConfig


def make_ctx(data) -> TaskContext:
    task = plan_tasks(list(range(8)), 6, 2, 1)[0]
    remain = subset_indices(data.train, task.remain, data.train_idx)
    forget = subset_indices(data.train, task.forget, data.train_idx)
    return TaskContext(task, data.train, remain, forget, 16, torch.device("cpu"), False, 0, 8, 1, OptimConfig())


def test_distillation_kl_matches_hand_formula():
    s = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    t = torch.tensor([[0.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    T = 2.0
    expected = 0.0
    for i in range(2):
        ps = [math.exp(v / T) for v in s[i].tolist()]
        pt = [math.exp(v / T) for v in t[i].tolist()]
        ps, pt = [v / sum(ps) for v in ps], [v / sum(pt) for v in pt]
        expected += sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))
    expected *= T ** 2 / 2
    assert math.isclose(float(distillation_kl(s, t, T)), expected, rel_tol=1e-5)
    assert float(distillation_kl(t, t, T)) < 1e-7


def test_swa_distance_sums_frobenius_norms():
    params = [torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 2.0], [2.0, 0.0]])]
    averaged = [torch.zeros(2), torch.tensor([[1.0, 0.0], [0.0, 0.0]])]
    assert math.isclose(float(swa_distance(params, averaged)), 5.0 + math.sqrt(8.0), rel_tol=1e-6)


def test_lr_decay_uses_the_15_per_superepoch_counter():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    decay = ScrubLRDecay(opt, 1e-3, [100])
    for epoch, lr in ((0, 1e-3), (69, 1e-3), (70, 1e-4), (99, 1e-4)):  # epoch 69: e = 99; epoch 70: e = 105
        decay.step(epoch)
        assert math.isclose(opt.param_groups[0]["lr"], lr), epoch


def test_schedule_max_then_min_passes_and_swa_after_each_superepoch(pretrained_model, tiny_data):
    method = SCRUB(pretrained_model, superepochs=2)
    ctx = make_ctx(tiny_data)
    method.begin_task(ctx)
    assert method.num_epochs(ctx) == 20
    loaders = {"remain": ["r1", "r2"], "forget": ["f1"]}
    for epoch in range(20):
        pairs = list(method.batches(ctx, loaders))
        if epoch % 10 < 5:
            assert pairs == [(None, "f1"), ("r1", None), ("r2", None)]
        else:
            assert pairs == [("r1", None), ("r2", None)]
        assert method.swa_updates == (epoch + 1) // 10


def test_swa_update_copies_then_averages(pretrained_model):
    method = SCRUB(pretrained_model)
    p = method.trainable_parameters()[0]
    with torch.no_grad():
        p.fill_(1.0)
        method.update_swa()
        assert torch.equal(method.swa[0], p)
        p.fill_(3.0)
        method.update_swa()
    assert torch.allclose(method.swa[0], torch.full_like(p, 0.9 * 1.0 + 0.1 * 3.0))


def test_max_step_increases_forget_kd_and_smoothing_pulls_to_swa(pretrained_model, tiny_data):
    method = SCRUBS(pretrained_model, smoothing=0.1, lr=1e-3)
    ctx = make_ctx(tiny_data)
    method.begin_task(ctx)
    method.build_optimizer(ctx)
    assert isinstance(method.optimizer, torch.optim.Adam)
    forget = next(iter(ctx.loader(ctx.forget_idx, "forget")))
    first = {k: v.detach() for k, v in method.training_step(None, forget, StepInfo(0, 0, 0)).items()}
    assert abs(float(first["forget_kd"])) < 1e-6 and float(first["smoothing"]) < 1e-6  # student == teacher == swa
    for i in range(5):
        last = {k: v.detach() for k, v in method.training_step(None, forget, StepInfo(0, 0, i + 1)).items()}
    assert float(last["forget_kd"]) < -0.1  # the max step minimises -KD: the KD grew
    assert float(last["smoothing"]) > 0
    remain = next(iter(ctx.loader(ctx.remain_idx, "remain")))
    min_step = method.compute_loss(remain, None, StepInfo(0, 0, 9))
    assert set(min_step) == {"remain_ce", "remain_kd", "smoothing", "total"}


def test_state_dict_round_trip(pretrained_model, tmp_path):
    method = SCRUB(pretrained_model)
    method.update_swa()
    torch.save(method.state_dict(), tmp_path / "m.pth")
    other = SCRUB(pretrained_model)
    other.load_state_dict(torch.load(tmp_path / "m.pth", weights_only=True))
    assert other.swa_updates == 1 and all(torch.equal(a, b) for a, b in zip(other.swa, method.swa))


def test_original_switches_map_to_scrub_and_scrub_s(pretrained_model):
    args = config.parse_args("x", argv=["--SCRUB", "--opt", "adam", "--sgda_smoothing", "0.05", "--sgda_gamma", "2",
                                        "--SCRUB_superepoch", "3"])
    assert args.method == "scrub_s"
    method = METHODS.get(args.method).from_args(pretrained_model, args)
    assert isinstance(method, SCRUBS) and method.smoothing == 0.05 and method.gamma == 2.0
    assert method.superepochs == 3 and method.opt_name == "adam" and method.lr == 1e-4 and method.kd_alpha == 0.001
    args = config.parse_args("x", argv=["--SCRUB", "--opt", "adam"])
    assert args.method == "scrub" and METHODS.get("scrub").from_args(pretrained_model, args).smoothing == 0.0
    with pytest.raises(SystemExit):
        config.parse_args("x", argv=["--method", "scrub_s"])


@pytest.mark.parametrize("name", ["scrub", "scrub_s"])
def test_two_task_run_forgets(run_tiny, pretrained_model, name):
    """The engine stops on a non-finite loss, so a finished run had finite losses; the head stays frozen."""
    results = run_tiny(name, superepochs=1, lr=1e-3, gamma=1.0, settings_kw={"selection": "last"})
    backbone = sum(p.numel() for p in pretrained_model.backbone.parameters())
    for task in results["tasks"]:
        assert math.isfinite(task["acc_f"]) and task["trainable_params"] == backbone
    assert results["tasks"][0]["acc_f"] < results["tasks"][0]["acc_f_before"] - 30, results["tasks"][0]
