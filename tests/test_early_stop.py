"""--early_stop K: a task ends once the selection H has not improved for K evaluations and the forgetting goal is
met; the best weights are still the ones kept, and the results say where the task stopped."""
import pytest
import torch
from conftest import NUM_CLASSES, tiny_settings, tiny_tasks
from test_selection import counts_at, record_weights

from config import parse_args
from engine.forgetting import Selector, run_forgetting
from engine.method import StepInfo
from gs_lora import GSLoRA
from model import build_model
from util.run_log import RunLog

LOSSES = {"forget_ce": torch.tensor(31.0), "total": torch.tensor(1.0)}


def selector_seeing(h_values, tiny_data, model, tmp_path, monkeypatch, patience=2, bound=30.0, growth=0.0,
                    goal="method"):
    """A selector whose evaluations give H = h_values in turn (Acc_f 100 before, so H = Acc_r = 100 - Acc_f)."""
    task = tiny_tasks()[0]
    evaluations = iter([counts_at(100, 90, task)] + [counts_at(100 - h, h, task) for h in h_values])
    monkeypatch.setattr(Selector, "_counts", lambda self: next(evaluations))
    method = GSLoRA(model, rank=4, bound=bound)
    return Selector(method, tiny_data, task, tiny_settings(tmp_path, early_stop=patience, early_stop_growth=growth,
                                                           early_stop_goal=goal))


def test_stops_after_k_evaluations_without_a_better_h(tiny_data, pretrained_model, tmp_path, monkeypatch):
    """H = 40, 70, 60, 70, 50 with K = 2: stale counts 0, 0, 1, 2 (equal is not better), so the fourth
    evaluation stops the task, not the third."""
    selector = selector_seeing([40, 70, 60, 70, 50], tiny_data, pretrained_model, tmp_path, monkeypatch)
    decisions = []
    for iteration in (5, 10, 15, 20):
        selector.consider(StepInfo(0, 0, iteration))
        decisions.append(selector.should_stop(LOSSES))
    assert decisions == [False, False, False, True]
    assert selector.finish(StepInfo(0, 0, 20))["stopped_early"] is True


@pytest.mark.parametrize("growth, stops_at", [(0.0, 8), (0.3, 9), (0.5, 12)])
def test_the_patience_grows_with_the_tasks_evaluations(tiny_data, pretrained_model, tmp_path, monkeypatch, growth,
                                                       stops_at):
    """H rises for six evaluations, then stalls, so n - 6 evaluations are stale at the n-th. The patience there is
    max(K, ceil(R n)) with K = 2: R = 0 stops at n = 8; R = 0.3 at n = 9 (3 >= ceil(2.7); at n = 8, 2 < ceil(2.4));
    R = 0.5 at n = 12 (6 >= 6; at n = 11, 5 < 6)."""
    selector = selector_seeing([10, 20, 30, 40, 50, 60] + [55] * 10, tiny_data, pretrained_model, tmp_path,
                               monkeypatch, growth=growth)
    for n in range(1, 17):
        selector.consider(StepInfo(0, 0, 5 * n))
        if selector.should_stop(LOSSES):
            break
    assert n == stops_at


@pytest.mark.parametrize("flag, value, says", [("--early_stop_growth", "0.5", "lengthens --early_stop's patience"),
                                                ("--early_stop_goal", "none", "chooses what --early_stop waits for")])
def test_early_stop_options_need_early_stop(capsys, flag, value, says):
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--method", "gs_lora", flag, value])
    assert capsys.readouterr().err.startswith(f"error: {flag} {says}")


def test_does_not_stop_while_the_forget_hinge_is_unmet(tiny_data, pretrained_model, tmp_path, monkeypatch):
    """The patience is spent, but the last step's forget cross entropy (29.5) is still below BND = 30."""
    selector = selector_seeing([70, 60, 50, 40], tiny_data, pretrained_model, tmp_path, monkeypatch)
    unmet = {**LOSSES, "forget_ce": torch.tensor(29.5)}
    for iteration in (5, 10, 15):
        selector.consider(StepInfo(0, 0, iteration))
        assert not selector.should_stop(unmet)
    assert selector.should_stop(LOSSES)


def test_with_goal_none_the_selection_h_alone_ends_the_task(tiny_data, pretrained_model, tmp_path, monkeypatch):
    """The same unmet hinge, but --early_stop_goal none: the task ends once the patience (K = 2) is spent."""
    selector = selector_seeing([70, 60, 50, 40], tiny_data, pretrained_model, tmp_path, monkeypatch, goal="none")
    unmet = {**LOSSES, "forget_ce": torch.tensor(29.5)}
    decisions = []
    for iteration in (5, 10, 15):
        selector.consider(StepInfo(0, 0, iteration))
        decisions.append(selector.should_stop(unmet))
    assert decisions == [False, False, True]


def test_gs_lora_goal_is_the_forget_hinge(pretrained_model):
    method = GSLoRA(pretrained_model, rank=4, bound=12.5)
    assert not method.forget_goal_met({"forget_ce": 12.49})
    assert method.forget_goal_met({"forget_ce": 12.5})


def test_with_the_per_image_hinge_the_goal_is_that_no_forget_image_falls_short(pretrained_model):
    """A batch-mean CE past the bound is not enough: one image still below it leaves a shortfall."""
    method = GSLoRA(pretrained_model, rank=4, bound=12.5, forget_hinge="image")
    assert not method.forget_goal_met({"forget_ce": 30.0, "forget_shortfall": 0.01})
    assert method.forget_goal_met({"forget_ce": 30.0, "forget_shortfall": 0.0})


def run_gs_lora(tiny_data, state, outdir, **settings_kw):
    model = build_model("vit_face_tiny", "cosface", NUM_CLASSES)
    model.load_state_dict(state)
    method = GSLoRA(model, rank=4, bound=2.0, beta=0.5, alpha=1e-3)
    settings = tiny_settings(outdir, epochs=8, lr=3e-2, selection="val", **settings_kw)
    settings.eval_every = 2
    return run_forgetting(method, tiny_data, tiny_tasks(1), settings, RunLog(None))["tasks"][0]


def test_a_run_ends_its_task_sooner_and_records_it(tiny_data, pretrained_state, tmp_path):
    """On the tiny data the hinge (BND 2) is met within a few steps; with K = 1 the task ends well inside the
    8-epoch budget, which the run without the flag spends in full."""
    full = run_gs_lora(tiny_data, pretrained_state, tmp_path / "full")
    early = run_gs_lora(tiny_data, pretrained_state, tmp_path / "early", early_stop=1)
    assert "stopped_early" not in full["selection"]
    assert early["selection"]["stopped_early"] is True
    assert early["optimizer_steps"] < full["optimizer_steps"]
    assert early["selection"]["iteration"] <= early["optimizer_steps"]


def test_early_stop_needs_an_evaluated_selection(capsys):
    with pytest.raises(SystemExit):
        parse_args("t", argv=["--method", "gs_lora", "--early_stop", "3", "--selection", "last"])
    assert "--selection last never evaluates" in capsys.readouterr().err


def test_early_stopping_keeps_the_weights_of_the_best_evaluation_not_the_last(tiny_data, pretrained_state, tmp_path,
                                                                             monkeypatch):
    """H = 40, 70, 60, 50 at steps 5, 10, 15, 20 with K = 2 ends the task at step 20 (stale 1, then 2; BND 0 is met
    at every step). The weights tested and merged are those after step 10 (H = 70), not those after step 20."""
    task = tiny_tasks(1)[0]
    # Before the task (Acc_f 100), the four evaluations, then the final one that Selector.finish makes (H = 30).
    evaluations = iter([counts_at(100, 90, task)] + [counts_at(100 - h, h, task) for h in (40, 70, 60, 50, 30)])
    monkeypatch.setattr(Selector, "_counts", lambda self: next(evaluations))
    model = build_model("vit_face_tiny", "cosface", NUM_CLASSES)
    model.load_state_dict(pretrained_state)
    method = GSLoRA(model, rank=4, bound=0.0, beta=0.5, alpha=1e-3)
    after_step, at_end = record_weights(method)
    settings = tiny_settings(tmp_path, epochs=4, early_stop=2)  # 12 steps per epoch, evaluated every 5
    entry = run_forgetting(method, tiny_data, [task], settings, RunLog(None))["tasks"][0]
    assert entry["optimizer_steps"] == len(after_step) == 20
    selection = entry["selection"]
    assert (selection["rule"], selection["iteration"], selection["stopped_early"]) == ("val", 10, True)
    assert selection["h_mean"] == pytest.approx(70.0)
    assert not torch.equal(after_step[9][0], after_step[19][0])  # training moved the weights after step 10
    for kept, best, last in zip(at_end, after_step[9], after_step[19]):
        assert not torch.equal(kept, last), "the task kept the weights of its last step"
        assert torch.equal(kept, best), "the task kept other weights than those of its best evaluation (step 10)"
