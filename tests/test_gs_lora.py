"""GS-LoRA and GS-LoRA++: each loss term against hand-computed values, and a tiny continual run.

Expected values are recomputed in float64 numpy from the model's outputs and LoRA matrices (reference 2.1-2.4).
"""
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_settings, tiny_tasks

from engine.forgetting import task_subsets
from engine.method import StepInfo, TaskContext
from gs_lora import GSLoRA, bounded_forget_loss, group_lasso, project_off_conflict, prototype_kl, prototype_loss


def task_context(data, task, data_ratio: float = 1.0) -> TaskContext:
    """The context the engine would give a method for ``task`` on the tiny data."""
    s = dataclasses.replace(tiny_settings(Path("unused")), data_ratio=data_ratio)
    remain_idx, forget_idx = task_subsets(data, task, s)
    return TaskContext(task, data.train, remain_idx, forget_idx, s.batch_size, s.device, s.amp, s.seed,
                       data.num_classes, s.optim.epochs, s.optim)


def first_images(ctx: TaskContext, indices: torch.Tensor, n: int = 8):
    """An (images, labels) batch of the first ``n`` of ``indices`` (a shuffled subset, so classes mix)."""
    idx = indices[:n]
    return ctx.train.images[idx].float() / 255, ctx.train.targets[idx]


def set_lora_factors(model, seed: int = 0) -> None:
    """Fixed non-zero LoRA factors (a fresh LoRA has B = 0, which would hide the update and the group norms).

    Large enough to move the tiny model's forget CE into a wide range (about 12 to 29) instead of all near 0.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def np_kl(features: np.ndarray, prototypes: np.ndarray) -> float:
    """(1/B) sum_i KL(softmax(p_i) || softmax(f_i)), softmax over the embedding coordinates."""
    log_p, log_f = np_log_softmax(prototypes), np_log_softmax(features)
    return float((np.exp(log_p) * (log_p - log_f)).sum(axis=1).mean())


def np_cross_entropies(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(B,) per-sample cross-entropy -log softmax(z_i)_{y_i}."""
    log_probs = np_log_softmax(logits.detach().double().numpy())
    return -log_probs[np.arange(len(labels)), labels.numpy()]


def np_class_means(model, ctx: TaskContext, indices: torch.Tensor) -> dict:
    """Class -> mean eval-mode embedding (float64) of the images ``indices`` of that class."""
    model.eval()
    with torch.no_grad():
        emb = model.backbone(ctx.train.images[indices].float() / 255).double().numpy()
    labels = ctx.train.targets[indices].numpy()
    return {int(c): emb[labels == c].mean(axis=0) for c in np.unique(labels)}


def test_forget_hinge_is_zero_at_and_above_the_bound():
    assert float(bounded_forget_loss(torch.tensor(105.0), 105.0)) == 0.0
    assert float(bounded_forget_loss(torch.tensor(120.0), 105.0)) == 0.0
    assert math.isclose(float(bounded_forget_loss(torch.tensor(100.0), 105.0)), 5.0)


def test_group_lasso_sums_group_l2_norms():
    g1 = [torch.tensor([[3.0]]), torch.tensor([[4.0]])]  # norm 5
    g2 = [torch.tensor([1.0, 2.0, 2.0])]  # norm 3
    assert math.isclose(float(group_lasso([g1, g2])), 8.0)


def test_prototype_kl_matches_hand_computation():
    f = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0]])
    pf, pp = torch.softmax(f, 1)[0], torch.softmax(p, 1)[0]
    expected = float((pp * (pp.log() - pf.log())).sum())
    assert math.isclose(float(prototype_kl(f, p)), expected, rel_tol=1e-6)
    assert float(prototype_kl(p, p)) < 1e-7


def test_prototype_kl_runs_from_the_prototype_to_the_feature():
    """KL(softmax(p) || softmax(f)), not KL(f || p): random, unrelated f and p make the two directions differ."""
    gen = torch.Generator().manual_seed(3)
    f, p = torch.randn(3, 5, generator=gen), 2.0 * torch.randn(3, 5, generator=gen)
    expected = np_kl(f.double().numpy(), p.double().numpy())
    assert abs(expected - np_kl(p.double().numpy(), f.double().numpy())) > 0.05  # the inputs tell them apart
    assert float(prototype_kl(f, p)) == pytest.approx(expected, rel=1e-5)


def test_prototype_loss_hinges_forget_and_pulls_remain():
    terms = prototype_loss(torch.tensor(3.0), torch.tensor(0.5), w_forget=0.1, w_remain=2.0, bound=18.0)
    assert math.isclose(float(terms["prototype_forget"]), 0.1 * 15.0)
    assert math.isclose(float(terms["prototype_remain"]), 1.0)


def test_two_task_run_forgets_and_retains(run_tiny):
    results = run_tiny("gs_lora", rank=4, bound=15.0, beta=0.5, alpha=1e-3, settings_kw={"epochs": 6})
    for task in results["tasks"]:
        assert task["acc_f"] < task["acc_f_before"] - 30, task
        assert task["acc_r"] > task["acc_r_before"] - 20, task
        assert len(task["group_norms"]) == 2
    assert results["tasks"][1]["acc_o"] is not None and results["tasks"][0]["acc_o"] is None


def test_alpha_warm_up_is_zero_before_alpha_epoch_then_big_alpha(pretrained_model):
    """--warmup_alpha: alpha 0 for epochs < alpha_epoch, big_alpha from then on; without it, always --alpha."""
    warm = GSLoRA(pretrained_model, rank=4, alpha=0.7, warmup_alpha=True, alpha_epoch=3, big_alpha=0.02)
    assert [warm.alpha_at(epoch) for epoch in range(6)] == [0.0, 0.0, 0.0, 0.02, 0.02, 0.02]
    plain = GSLoRA(pretrained_model, rank=4, alpha=0.7, alpha_epoch=3, big_alpha=0.02)
    assert [plain.alpha_at(epoch) for epoch in (0, 3, 25)] == [0.7, 0.7, 0.7]


def test_structure_term_is_alpha_times_summed_block_norms(tiny_data, pretrained_model):
    """'structure' = alpha(epoch) * sum over blocks of sqrt(sum of squares of the block's 4 LoRA matrices)."""
    method = GSLoRA(pretrained_model, rank=4, alpha=0.7, warmup_alpha=True, alpha_epoch=3, big_alpha=0.02)
    ctx = task_context(tiny_data, tiny_tasks()[0])
    method.begin_task(ctx)
    set_lora_factors(pretrained_model)
    squares = {}
    for name, p in pretrained_model.named_parameters():
        if "lora_" in name:
            block = name.split("blocks.")[1].split(".")[0]
            squares[block] = squares.get(block, 0.0) + float((p.detach().double().numpy() ** 2).sum())
    assert len(squares) == 2
    norm_sum = sum(math.sqrt(v) for v in squares.values())
    remain, forget = first_images(ctx, ctx.remain_idx), first_images(ctx, ctx.forget_idx)
    assert method.compute_loss(remain, forget, StepInfo(0, 2, 0))["structure"].item() == 0.0
    structure = method.compute_loss(remain, forget, StepInfo(0, 3, 0))["structure"].item()
    assert structure == pytest.approx(0.02 * norm_sum, rel=1e-5)


def test_forget_hinge_applies_to_the_batch_mean_cross_entropy(tiny_data, pretrained_model):
    """'forget' = beta * ReLU(BND - mean_i CE_i), not beta * mean_i ReLU(BND - CE_i) (reference 2.1)."""
    method = GSLoRA(pretrained_model, rank=4, beta=0.3)
    ctx = task_context(tiny_data, tiny_tasks()[0])
    method.begin_task(ctx)
    set_lora_factors(pretrained_model)
    pretrained_model.eval()  # the same logits in the method's forward as in ours
    remain, forget = first_images(ctx, ctx.remain_idx), first_images(ctx, ctx.forget_idx)
    with torch.no_grad():
        ce = np_cross_entropies(pretrained_model(*forget)[0], forget[1])
    method.bound = (ce.mean() + ce.max()) / 2  # between the mean and the largest CE: the two readings differ
    expected = 0.3 * max(method.bound - ce.mean(), 0.0)
    assert 0.3 * np.maximum(method.bound - ce, 0.0).mean() - expected > 0.01
    assert method.compute_loss(remain, forget, StepInfo(0, 0, 0))["forget"].item() == pytest.approx(expected, rel=1e-4)


def test_the_per_image_hinge_is_the_mean_of_one_hinge_per_forget_image():
    """Logits (2, 0, 0) and (0, 1, 3), both of class 0: CE = ln(1 + 2e^-2) = 0.239545 and ln(1 + e + e^3) = 3.169846.
    With BND = ln 3 = 1.098612 the per-image hinge is (0.859067 + 0) / 2, while the batch-mean CE 1.704695 is past
    the bound."""
    logits, labels = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]), torch.tensor([0, 0])
    ce_each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert ce_each.tolist() == pytest.approx([0.239545, 3.169846], abs=1e-6)
    assert float(bounded_forget_loss(ce_each, math.log(3)).mean()) == pytest.approx(0.429534, abs=1e-6)
    assert float(bounded_forget_loss(ce_each.mean(), math.log(3))) == 0.0


def test_forget_hinge_image_applies_to_each_forget_images_cross_entropy(tiny_data, pretrained_model):
    """--forget_hinge image: 'forget' = beta * mean_i ReLU(BND - CE_i); the unweighted hinge is logged as
    'forget_shortfall' and left out of the total."""
    method = GSLoRA(pretrained_model, rank=4, beta=0.3, forget_hinge="image")
    ctx = task_context(tiny_data, tiny_tasks()[0])
    method.begin_task(ctx)
    set_lora_factors(pretrained_model)
    pretrained_model.eval()
    remain, forget = first_images(ctx, ctx.remain_idx), first_images(ctx, ctx.forget_idx)
    with torch.no_grad():
        ce = np_cross_entropies(pretrained_model(*forget)[0], forget[1])
    method.bound = (ce.mean() + ce.max()) / 2  # the batch-mean reading is 0.3 * (BND - mean CE): smaller
    expected = np.maximum(method.bound - ce, 0.0).mean()
    assert expected - max(method.bound - ce.mean(), 0.0) > 0.01
    losses = method.compute_loss(remain, forget, StepInfo(0, 0, 0))
    assert losses["forget"].item() == pytest.approx(0.3 * expected, rel=1e-4)
    assert losses["forget_shortfall"].item() == pytest.approx(expected, rel=1e-4)
    optimised = losses["remain"] + losses["forget"] + losses["structure"]
    assert losses["total"].item() == pytest.approx(optimised.item(), rel=1e-6)


def test_second_task_uses_the_second_entries_of_the_per_task_weights(tiny_data, pretrained_model):
    """Task 1 weighs the forget hinge by cl_beta_list[1] and the forget prototype hinge by cl_prof_list[1]."""
    method = GSLoRA(pretrained_model, rank=4, bound=1000.0, beta=0.9, beta_list=[0.5, 0.2], prototype=True,
                    pro_f_weight=0.9, prof_list=[0.01, 0.03], bound_pro=1000.0)
    ctx = task_context(tiny_data, tiny_tasks()[1])
    method.begin_task(ctx)
    pretrained_model.eval()
    remain, forget = first_images(ctx, ctx.remain_idx), first_images(ctx, ctx.forget_idx)
    means = np_class_means(pretrained_model, ctx, ctx.forget_idx)
    with torch.no_grad():
        logits, emb = pretrained_model(*forget)
    ce = np_cross_entropies(logits, forget[1]).mean()
    kl = np_kl(emb.double().numpy(), np.stack([means[int(c)] for c in forget[1]]))
    losses = method.compute_loss(remain, forget, StepInfo(1, 0, 0))
    assert losses["forget"].item() == pytest.approx(0.2 * (1000.0 - ce), rel=1e-5)
    assert losses["prototype_forget"].item() == pytest.approx(0.03 * (1000.0 - kl), rel=1e-5)
    extras = method.end_task(ctx)
    assert (extras["beta"], extras["pro_f_weight"]) == (0.2, 0.03)


def test_prototypes_are_class_means_of_the_task_training_images(tiny_data, pretrained_model):
    """GS-LoRA++ prototypes: every forget and remain class's mean eval-mode embedding over the task's subsets."""
    task = tiny_tasks()[0]
    method = GSLoRA(pretrained_model, rank=4, prototype=True)
    ctx = task_context(tiny_data, task, data_ratio=0.5)
    method.begin_task(ctx)
    for indices, classes in ((ctx.forget_idx, task.forget), (ctx.remain_idx, task.remain)):
        means = np_class_means(pretrained_model, ctx, indices)
        assert sorted(means) == sorted(classes)
        for c, mean in means.items():
            np.testing.assert_allclose(method.prototypes[c].double().numpy(), mean, rtol=1e-5, atol=1e-6)


def test_end_task_reports_both_group_norm_conventions(tiny_data, pretrained_model):
    """group_norms: sqrt(sum of squares) per block (the lasso's norm); group_norms_frobenius_sum: the sum of the
    block's four Frobenius norms (the original's log)."""
    method = GSLoRA(pretrained_model, rank=4)
    ctx = task_context(tiny_data, tiny_tasks()[0])
    method.begin_task(ctx)
    set_lora_factors(pretrained_model, seed=3)
    squares, frobenius = {}, {}
    for name, p in pretrained_model.named_parameters():
        if "lora_" in name:
            block = int(name.split("blocks.")[1].split(".")[0])
            values = p.detach().double().numpy()
            squares[block] = squares.get(block, 0.0) + float((values ** 2).sum())
            frobenius[block] = frobenius.get(block, 0.0) + float(np.sqrt((values ** 2).sum()))
    extras = method.end_task(ctx)
    assert extras["group_norms"] == pytest.approx([math.sqrt(squares[b]) for b in sorted(squares)], rel=1e-5)
    assert extras["group_norms_frobenius_sum"] == pytest.approx([frobenius[b] for b in sorted(frobenius)], rel=1e-5)


@pytest.mark.parametrize("term, side, weight, temperature", [("retain_kd", "forget", 0.7, 3.0),
                                                             ("remain_kd", "remain", 0.4, 2.0)])
def test_the_distillation_terms_hold_the_starting_models_remembered_class_logits(tiny_data, pretrained_model, term,
                                                                                   side, weight, temperature):
    """TERM = w T^2 (1/B) sum_i KL(softmax(t_i[K]/T) || softmax(s_i[K]/T)), t the model at the start of the task, s
    the trained one, over the classes K still to be remembered (not the forget or old ones), on the forget images
    (--retain_kd) or on the remain images (--remain_kd), and on no other side."""
    task = tiny_tasks(2)[1]
    assert task.old and task.forget  # so that using every column, or the wrong ones, gives another value
    method = GSLoRA(pretrained_model, rank=4, retain_kd_T=temperature, **{term: weight})
    ctx = task_context(tiny_data, task)
    method.begin_task(ctx)
    pretrained_model.eval()
    batches = {"remain": first_images(ctx, ctx.remain_idx), "forget": first_images(ctx, ctx.forget_idx)}
    with torch.no_grad():
        teacher = pretrained_model(*batches[side])[0].double().numpy()
        set_lora_factors(pretrained_model)  # the trained model moves away from the starting one
        student = pretrained_model(*batches[side])[0].double().numpy()
    kept = task.remain + task.missing
    log_p, log_q = np_log_softmax(teacher[:, kept] / temperature), np_log_softmax(student[:, kept] / temperature)
    expected = weight * temperature ** 2 * float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean())
    assert expected > 1e-3
    losses = method.compute_loss(batches["remain"], batches["forget"], StepInfo(0, 0, 0))
    assert losses[term].item() == pytest.approx(expected, rel=1e-4)
    assert {"retain_kd", "remain_kd"} & set(losses) == {term}
    setattr(method, term, 0.0)  # off (the default): no term
    assert term not in method.compute_loss(batches["remain"], batches["forget"], StepInfo(0, 0, 0))


def test_remain_kd_needs_remain_images(capsys):
    from config import parse_args
    assert parse_args("x", argv=["--method", "gs_lora", "--no_retain", "--retain_kd", "1"]).retain_kd == 1
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--method", "gs_lora", "--no_retain", "--remain_kd", "1"])
    assert capsys.readouterr().err.startswith("error: --remain_kd distils on remain images, but --no_retain")


@pytest.mark.parametrize("name, log_multiple", [("auto", 2), ("chance", 1)])
def test_named_bounds_are_multiples_of_the_log_of_the_heads_class_count_and_are_recorded(tiny_data, pretrained_model,
                                                                                        name, log_multiple):
    """--BND auto: the forget hinge is beta * ReLU(2 ln C - CE_f) for a head of C classes (chance: ln C), and the task
    reports the bound."""
    method = GSLoRA(pretrained_model, rank=4, bound=name, beta=0.3)
    ctx = task_context(tiny_data, tiny_tasks()[0])
    method.begin_task(ctx)
    pretrained_model.eval()
    remain, forget = first_images(ctx, ctx.remain_idx), first_images(ctx, ctx.forget_idx)
    with torch.no_grad():
        logits = pretrained_model(*forget)[0]
    bound = log_multiple * np.log(logits.shape[1])  # auto: the probability 1/C^2, ln(C^2); chance: 1/C
    ce = np_cross_entropies(logits, forget[1]).mean()
    assert ce < bound  # the hinge is active, so the bound shows in the loss
    loss = method.compute_loss(remain, forget, StepInfo(0, 0, 0))["forget"].item()
    assert loss == pytest.approx(0.3 * (bound - ce), rel=1e-5)
    assert method.end_task(ctx)["bound"] == pytest.approx(bound)


@pytest.mark.parametrize("text, expected", [("auto", "auto"), ("AUTO", "auto"), ("chance", "chance"), ("9.5", 9.5)])
def test_the_bnd_flag_takes_a_number_or_a_named_bound(text, expected):
    from config import parse_args
    assert parse_args("x", argv=["--method", "gs_lora", "--BND", text]).BND == expected


@pytest.mark.parametrize("text", ["nan", "inf", "high"])
def test_the_bnd_flag_refuses_anything_else_in_one_line(text, capsys):
    from config import parse_args
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--method", "gs_lora", "--BND", text])
    assert capsys.readouterr().err == f"error: argument --BND: must be a finite number, 'auto' or 'chance', got {text}\n"


def test_project_off_conflict_removes_the_component_against_the_rest_across_tensors():
    """f = (1 | 2, 0.5), r = (-3 | 1, -2): <f, r> = -2 and ||r||^2 = 14, so f + r/7 = (4/7 | 15/7, 3/14), orthogonal
    to r; a forget gradient that agrees with the rest (<f, -r> = 2) is left as it is."""
    f = [torch.tensor([1.0]), torch.tensor([2.0, 0.5])]
    r = [torch.tensor([-3.0]), torch.tensor([1.0, -2.0])]
    projected = torch.cat(project_off_conflict(f, r))
    assert torch.allclose(projected, torch.tensor([4 / 7, 15 / 7, 3 / 14]))
    assert torch.equal(torch.cat(project_off_conflict(f, [-x for x in r])), torch.cat(f))


def test_project_forget_steps_along_the_rest_plus_the_projected_forget_gradient(tiny_data, pretrained_model):
    """With alpha 0 the rest is the remain CE: grad = g_r + g_f - <g_f, g_r>/||g_r||^2 g_r, each gradient taken here
    from its own loss (beta * (BND - mean CE_f) with the hinge active, and the remain CE)."""
    method = GSLoRA(pretrained_model, rank=4, bound=1000.0, beta=0.3, alpha=0.0, project_forget=True)
    ctx = task_context(tiny_data, tiny_tasks()[0])
    method.begin_task(ctx)
    set_lora_factors(pretrained_model)
    pretrained_model.eval()
    remain, forget = first_images(ctx, ctx.remain_idx), first_images(ctx, ctx.forget_idx)
    params = method.trainable_parameters()

    def flat_grad(loss):
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]).double()

    g_f = flat_grad(0.3 * (1000.0 - torch.nn.functional.cross_entropy(pretrained_model(*forget)[0], forget[1])))
    g_r = flat_grad(torch.nn.functional.cross_entropy(pretrained_model(*remain)[0], remain[1]))
    dot = float(g_f @ g_r)
    assert dot < 0  # the two conflict here, so the projection is exercised
    expected = g_r + g_f - dot / float(g_r @ g_r) * g_r
    method.backward(method.compute_loss(remain, forget, StepInfo(0, 0, 0)))
    got = torch.cat([p.grad.flatten() for p in params]).double()
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(got, g_r + g_f, rtol=1e-3)  # the plain sum differs
