"""GS-LoRA and GS-LoRA++: each loss term against hand-computed values, and a tiny continual run."""
import math

import torch

from gs_lora import bounded_forget_loss, group_lasso, prototype_kl, prototype_loss


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
