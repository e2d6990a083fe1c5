"""The task loop: results written per task, resume after an interrupted task, checkpoints, selection, divergence."""
import json
import math

import pytest
import torch
from conftest import NUM_CLASSES, tiny_settings, tiny_tasks

import baselines  # noqa: F401  (registers the baselines)
from data.task_plan import plan_tasks
from engine.forgetting import run_forgetting
from gs_lora import GSLoRA
from model import build_model, load_model_weights
from util.checkpoint import load_checkpoint
from util.errors import TrainingDiverged, UserError
from util.run_log import RunLog

GS_KW = dict(rank=4, bound=15.0, beta=0.5, alpha=1e-3)


def test_results_hold_both_conventions_and_costs(run_tiny):
    results = run_tiny("gs_lora", **GS_KW)
    task = results["tasks"][0]
    for key in ("acc_f", "acc_r", "acc_o", "acc_m", "acc_f_before", "acc_r_before", "h_mean"):
        assert key in task and key in task["plain"]
    assert task["acc_m"] is None and task["acc_o"] is None
    assert task["trainable_params"] == 2 * 2 * 4 * (32 + 64)  # 2 blocks x (fc1 + fc2) x rank 4 x (in + out)
    assert task["wall_time_s"] > 0 and task["peak_memory_mb"] > 0
    assert task["selection"]["rule"] == "val"
    assert len(results["pretrained"]["original"]) == 2


def test_interrupted_run_keeps_finished_tasks_and_resumes(tiny_data, pretrained_state, tmp_path, monkeypatch):
    settings = tiny_settings(tmp_path)

    def fresh_method():
        model = build_model("vit_face_tiny", "cosface", NUM_CLASSES)
        model.load_state_dict(pretrained_state)
        return GSLoRA(model, **GS_KW)

    original_begin = GSLoRA.begin_task

    def crash_on_second_task(self, ctx):
        if ctx.task.index == 1:
            raise KeyboardInterrupt
        original_begin(self, ctx)

    monkeypatch.setattr(GSLoRA, "begin_task", crash_on_second_task)
    with pytest.raises(KeyboardInterrupt):
        run_forgetting(fresh_method(), tiny_data, tiny_tasks(), settings, RunLog(None))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [t["task"] for t in saved["tasks"]] == [0]
    assert (tmp_path / "task-level" / "Backbone_task_0.pth").exists()

    monkeypatch.setattr(GSLoRA, "begin_task", original_begin)
    with pytest.raises(UserError, match="--resume_run"):
        run_forgetting(fresh_method(), tiny_data, tiny_tasks(), settings, RunLog(None))
    resumed = run_forgetting(fresh_method(), tiny_data, tiny_tasks(), settings, RunLog(None), resume=True)
    assert [t["task"] for t in resumed["tasks"]] == [0, 1]
    assert resumed["tasks"][0] == saved["tasks"][0]
    # Task 1 started from task 0's weights: its before-accuracy on task 0's classes is task 0's after-accuracy.
    assert resumed["tasks"][1]["acc_o_before"] == pytest.approx(saved["tasks"][0]["acc_f"], abs=1e-9)


def test_saved_checkpoint_reloads_without_applying_lora_twice(tiny_data, pretrained_state, pretrained_model,
                                                             tmp_path):
    method = GSLoRA(pretrained_model, **GS_KW)
    run_forgetting(method, tiny_data, tiny_tasks(1), tiny_settings(tmp_path), RunLog(None))
    live = pretrained_model.eval()
    images = tiny_data.test.images[:16].float() / 255
    plain = build_model("vit_face_tiny", "cosface", NUM_CLASSES).eval()
    saved = load_checkpoint(tmp_path / "task-level" / "Backbone_task_0.pth")["model"]
    load_model_weights(plain, saved)
    torch.testing.assert_close(plain(images)[0], live(images)[0])
    # The saved weight is the pre-trained weight plus exactly the saved low-rank update, applied once.
    delta = torch.load(tmp_path / "task-level" / "lora_delta_task_0.pth", weights_only=True)
    name = "backbone.blocks.0.mlp.fc1"
    factors = delta["factors"]
    update = factors[f"{name}.lora_B"] @ factors[f"{name}.lora_A"] * delta["scaling"]
    assert float(update.abs().max()) > 0
    torch.testing.assert_close(saved[f"{name}.weight"], pretrained_state[f"{name}.weight"] + update)


def test_selection_rules_are_recorded(run_tiny):
    results = run_tiny("gs_lora", num_tasks=1, settings_kw={"selection": "last"}, **GS_KW)
    assert results["tasks"][0]["selection"]["rule"] == "last"
    results = run_tiny("gs_lora", num_tasks=1, settings_kw={"selection": "test"}, **GS_KW)
    assert results["tasks"][0]["selection"]["rule"] == "test"


def test_non_finite_loss_stops_with_task_epoch_and_term(run_tiny):
    with pytest.raises(TrainingDiverged, match=r"task 0, epoch 0: loss term 'forget'"):
        run_tiny("gs_lora", num_tasks=1, rank=4, bound=float("inf"), beta=1.0, alpha=0.0)


def test_missing_class_setting_reports_acc_m(tiny_data, pretrained_model, tmp_path):
    tasks = plan_tasks(list(range(NUM_CLASSES)), 6, 2, 2, open_cls_num=1)
    assert tasks[0].missing == [0] and 0 not in tasks[0].remain
    results = run_forgetting(GSLoRA(pretrained_model, **GS_KW), tiny_data, tasks, tiny_settings(tmp_path),
                             RunLog(None))
    for task in results["tasks"]:
        assert task["acc_m"] is not None and task["acc_m_before"] is not None
    assert results["tasks"][0]["train_images"]["remain"] == 5 * 32  # classes 1-5 only: class 0 has no data


@pytest.mark.parametrize("name, kw", [("gs_lora", GS_KW), ("der", {}), ("scrub", {"superepochs": 1})])
def test_steps_per_task_gives_every_method_the_same_budget(run_tiny, name, kw):
    """GS-LoRA counts an epoch over the remain data, DER over the forget data, SCRUB in super-epochs: with a step
    budget every task takes exactly that many optimizer steps."""
    results = run_tiny(name, settings_kw={"steps_per_task": 7, "selection": "last"}, **kw)
    assert [t["optimizer_steps"] for t in results["tasks"]] == [7, 7]


def test_without_a_budget_an_epoch_is_the_methods_own(run_tiny):
    results = run_tiny("gs_lora", settings_kw={"epochs": 2, "selection": "last"}, **GS_KW)
    first, second = results["tasks"]
    # GS-LoRA: a pass over the remain subset per epoch, batches of 16 (the last one partial).
    assert first["optimizer_steps"] == 2 * math.ceil(first["train_images"]["remain"] / 16)
    assert second["optimizer_steps"] == 2 * math.ceil(second["train_images"]["remain"] / 16)


def test_a_list_option_default_is_not_shared_between_method_instances():
    """Method.__init__ copies each option's default, so one instance appending to a list option leaves others alone."""
    from engine.method import Method, Option

    class Listing(Method):
        options = {"values": Option("values", [])}

    first, second = Listing(torch.nn.Linear(2, 2)), Listing(torch.nn.Linear(2, 2))
    first.values.append(1.0)
    assert second.values == [] and Listing.options["values"].default == []
    assert Listing(torch.nn.Linear(2, 2), values=[0.5]).values == [0.5]
