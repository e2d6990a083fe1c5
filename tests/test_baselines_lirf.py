"""LIRF: loss terms against hand formulas, the lower/upper split, the trained deposit, class-index columns, a run."""
import math

import torch

import config
from baselines.lirf import LIRF, attention_map, attention_transfer, upper_logits
from data.folders import subset_indices
from data.task_plan import plan_tasks
from engine.method import METHODS, StepInfo, TaskContext
from engine.optim import OptimConfig


def make_ctx(data) -> TaskContext:
    task = plan_tasks(list(range(8)), 6, 2, 1)[0]  # forgets classes 6 and 7: not the first columns
    remain = subset_indices(data.train, task.remain, data.train_idx)
    forget = subset_indices(data.train, task.forget, data.train_idx)
    return TaskContext(task, data.train, remain, forget, 16, torch.device("cpu"), False, 0, 8, 1,
                       OptimConfig(lr=1e-3, epochs=1))


def hand_kl(student: torch.Tensor, teacher: torch.Tensor, T: float) -> float:
    """(1/B) sum_i sum_c q log(q / p) with p, q the temperature softmaxes, written out."""
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        p = [math.exp(v / T) for v in s_row]
        q = [math.exp(v / T) for v in t_row]
        p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
        total += sum(qc * math.log(qc / pc) for pc, qc in zip(p, q))
    return total / len(student)


def test_attention_map_and_transfer_match_hand_values():
    x = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])  # mean over tokens of x^2: (5, 2)
    y = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # (1, 0)
    ax = [5 / math.sqrt(29), 2 / math.sqrt(29)]
    assert torch.allclose(attention_map(x), torch.tensor([ax]))
    expected = ((ax[0] - 1.0) ** 2 + ax[1] ** 2) / 2
    assert math.isclose(float(attention_transfer(x, y)), expected, rel_tol=1e-6)
    small = attention_map(torch.tensor([[[1.0, 0.001]]]))  # normalised second entry 1e-6 < 0.005: zeroed
    assert float(small[0, 1]) == 0.0 and float(small[0, 0]) > 0.99


def test_lower_then_upper_half_is_the_whole_model(pretrained_model):
    model = pretrained_model.eval()
    x, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 5, 7])
    logits = upper_logits(model, model.backbone.tokens(x, 1), y, 1)
    assert torch.allclose(logits, model(x, y)[0], atol=1e-5)


def test_lower_half_trains_with_the_deposit_upper_half_frozen(pretrained_model, tiny_data):
    method = LIRF(pretrained_model)
    backbone = pretrained_model.backbone
    lower = [backbone.patch_embed.weight, backbone.patch_embed.bias, backbone.cls_token, backbone.pos_embedding,
             *backbone.blocks[0].parameters()]
    assert {id(p) for p in method.trainable_parameters()} == {id(p) for p in lower}
    ctx = make_ctx(tiny_data)
    method.begin_task(ctx)
    method.build_optimizer(ctx)
    optimized = {id(p) for g in method.optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in method.deposit.parameters()} <= optimized  # the original's deposit was not (bug 4)
    assert len(method.trainable_parameters()) == len(lower)
    before = {n: p.detach().clone() for n, p in pretrained_model.named_parameters()}
    deposit_before = [p.detach().clone() for p in method.deposit.parameters()]
    remain = next(iter(ctx.loader(ctx.remain_idx, "remain")))
    forget = next(iter(ctx.loader(ctx.forget_idx, "forget")))
    pretrained_model.train()
    method.training_step(remain, forget, StepInfo(0, 0, 0))
    # The frozen upper half runs in eval mode (no dropout), as the original's 'up' model; the lower half trains.
    assert not any(m.training for block in backbone.blocks[1:] for m in block.modules())
    assert all(m.training for m in backbone.blocks[0].modules())
    changed = {n for n, p in pretrained_model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("backbone.patch_embed", "backbone.cls", "backbone.pos", "backbone.blocks.0"))
                           for n in changed)
    assert any(not torch.equal(p, q) for p, q in zip(method.deposit.parameters(), deposit_before))
    snap = method.snapshot()
    with torch.no_grad():
        for p in method.deposit.parameters():
            p.add_(1.0)
    method.restore(snap)
    assert all(torch.equal(p, q) for p, q in zip(method.deposit.parameters(), snap[len(lower):]))


def test_remain_kl_uses_the_remaining_class_columns(pretrained_model, tiny_data):
    method = LIRF(pretrained_model, temperature=2.0, alpha=0.3)
    ctx = make_ctx(tiny_data)
    method.begin_task(ctx)
    method.build_optimizer(ctx)
    method.relabel = lambda labels: (labels + 1) % 8
    remain = next(iter(ctx.loader(ctx.remain_idx, "remain")))
    forget = next(iter(ctx.loader(ctx.forget_idx, "forget")))
    method.training_step(remain, forget, StepInfo(0, 0, 0))  # the student moves away from the teacher
    with torch.no_grad():
        losses = method.compute_loss(remain, forget, StepInfo(0, 0, 1))
        wrong = (forget[1] + 1) % 8
        s, t = pretrained_model(forget[0], wrong)[0], method.teacher(forget[0], wrong)[0]
    cols = ctx.task.remain
    expected = 10 * 0.3 * 4 * hand_kl(s[:, cols], t[:, cols], 2.0)
    positional = 10 * 0.3 * 4 * hand_kl(s[:, 2:], t[:, 2:], 2.0)  # the original's [:, split:] slice
    assert math.isclose(float(losses["remain_kl"]), expected, rel_tol=1e-4)
    assert not math.isclose(expected, positional, rel_tol=1e-3)


def test_state_dict_round_trip(pretrained_model, tmp_path):
    method = LIRF(pretrained_model)
    with torch.no_grad():
        method.deposit.cls_token.add_(1.0)
    torch.save(method.state_dict(), tmp_path / "m.pth")
    other = LIRF(pretrained_model)
    other.load_state_dict(torch.load(tmp_path / "m.pth", weights_only=True))
    assert torch.equal(other.deposit.cls_token, method.deposit.cls_token)


def test_original_switch_maps_to_lirf(pretrained_model):
    args = config.parse_args("x", argv=["--LIRF", "--LIRF_T", "5", "--LIRF_alpha", "0.2", "--replay"])
    method = METHODS.get(args.method).from_args(pretrained_model, args)
    assert args.method == "lirf" and isinstance(method, LIRF)
    assert method.temperature == 5.0 and method.alpha == 0.2


def test_two_task_run_forgets(run_tiny, pretrained_model):
    backbone = pretrained_model.backbone
    lower = sum(p.numel() for p in [*backbone.patch_embed.parameters(), backbone.cls_token, backbone.pos_embedding,
                                    *backbone.blocks[0].parameters()])
    results = run_tiny("lirf", settings_kw={"epochs": 3, "lr": 3e-3})
    for task in results["tasks"]:
        assert task["trainable_params"] == lower
    assert results["tasks"][0]["acc_f"] < results["tasks"][0]["acc_f_before"] - 30, results["tasks"][0]
