"""The true oracle (train_oracle.py, audit/oracle.py): a model trained without the forgotten classes never sees one
of their images, classes are named by folder, the gaps are ours minus the oracle's, and the audit table names the
methods that come within NEAR_ORACLE points of it."""
import argparse
import json

import pytest
import torch

import train_oracle
from audit.oracle import with_oracle
from config import parse_args
from data import without_classes
from data.class_names import class_indices, split_names
from data.task_plan import Task
from util.errors import UserError
from util.table import NEAR_ORACLE, build_audit_table, near_oracle


def test_leaving_classes_out_drops_their_training_and_validation_images_only(tiny_data):
    left = without_classes(tiny_data, [6, 1, 6])
    targets = tiny_data.train.targets
    for name in ("train_idx", "val_idx"):
        before, after = getattr(tiny_data, name), getattr(left, name)
        assert set(targets[after].tolist()) == {0, 2, 3, 4, 5, 7}
        kept = [i for i in before.tolist() if targets[i] not in (1, 6)]
        assert after.tolist() == kept  # order and every other image unchanged
    assert left.test is tiny_data.test  # accuracy on the left-out classes is still measured
    with pytest.raises(UserError, match="no training image"):
        without_classes(tiny_data, range(8))


def test_classes_are_named_by_folder_and_an_unknown_name_lists_the_closest():
    classes = ["0000045", "0000099", "0000102", "0001045"]
    assert split_names(["0000099,0000045", " 0001045 ", ","]) == ["0000099", "0000045", "0001045"]
    assert class_indices(["0001045", "0000045"], classes, "--x") == [3, 0]
    with pytest.raises(UserError, match=r"--x: no class named '0000046'; closest: 0000045, "):
        class_indices(["0000046"], classes, "--x")
    with pytest.raises(UserError, match="names 0000099 more than once"):
        class_indices(["0000099", "0000099"], classes, "--x")


def test_the_oracle_of_a_task_trains_and_selects_without_its_forgotten_and_old_classes(tiny_data, tmp_path,
                                                                                      monkeypatch):
    seen = {}

    def recording_pretrain(model, data, settings, run_log, path, task=None):
        seen.update(train=set(data.train.targets[data.train_idx].tolist()),
                    val=set(data.train.targets[data.val_idx].tolist()), task=task, path=path)
        return {"epoch": 1, "val_acc": 50.0, "optimizer_steps": 3}

    monkeypatch.setattr(train_oracle, "pretrain", recording_pretrain)
    recipe = parse_args("pretrain", forgetting=False, argv=["-d", "synthetic", "-n", "vit_face_tiny", "-head",
                                                            "softmax", "--exclude_classes", "c7"])
    task = Task(2, remain=[0, 2, 3, 5], forget=[1, 4], old=[6], missing=[])
    model_args = dict(net="vit_face_tiny", head="softmax", num_classes=8)
    _, images, cost = train_oracle.train_task_oracle(task, tiny_data, recipe, model_args, torch.device("cpu"),
                                                    tmp_path, None)
    assert seen["train"] == seen["val"] == {0, 2, 3, 5}  # neither the task's classes nor the recipe's exclusion
    assert seen["task"] == 2 and seen["path"].name == "Backbone_task_2.pth"
    assert images == sum(int(tiny_data.train.targets[i]) in (0, 2, 3, 5) for i in tiny_data.train_idx.tolist())
    assert cost["optimizer_steps"] == 3 and cost["selection"] == {"rule": "val", "epoch": 1, "val_acc": 50.0}
    del recipe.exclude_classes  # the recipe of a checkpoint made before the flag existed
    train_oracle.train_task_oracle(task, tiny_data, recipe, model_args, torch.device("cpu"), tmp_path, None)
    assert seen["train"] == {0, 2, 3, 5, 7}


def test_resuming_refuses_the_oracle_of_another_plan_or_recipe(tmp_path):
    run = {"plan": [{"task": 0, "remain": [0, 1], "forget": [2]}], "pretrained": {}}
    recipe = {"seed": 3, "epochs": 2}
    assert train_oracle.start_results(tmp_path, run, {}, recipe, resume=False)["tasks"] == []
    (tmp_path / "results.json").write_text(json.dumps({"plan": run["plan"], "recipe": recipe, "tasks": [{"task": 0}]}))
    assert train_oracle.start_results(tmp_path, run, {}, recipe, resume=True)["tasks"] == [{"task": 0}]
    with pytest.raises(UserError, match="pass --resume_run"):
        train_oracle.start_results(tmp_path, run, {}, recipe, resume=False)
    other_plan = {**run, "plan": [{"task": 0, "remain": [0, 2], "forget": [1]}]}
    for other_run, other_recipe in ((other_plan, recipe), (run, {**recipe, "seed": 4})):
        with pytest.raises(UserError, match="oracle of another plan or pre-trained model"):
            train_oracle.start_results(tmp_path, other_run, {}, other_recipe, resume=True)


def test_a_model_made_elsewhere_has_no_recipe_to_repeat(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"model": {}}, path)
    with pytest.raises(UserError, match="not made by train_own.py"):
        train_oracle.read_recipe(str(path), {"data_mode": "synthetic"})
    torch.save({"model": {}, "config": {"epochs": 2, "data_mode": "casia100"}, "model_args": {}}, path)
    with pytest.raises(UserError, match="pre-trained on casia100 data, the run forgets on synthetic"):
        train_oracle.read_recipe(str(path), {"data_mode": "synthetic"})


def audit_of(mia: float, knn: float, tar: float, relearn_model: float, relearn_prompt: float) -> dict:
    return {"membership": {"classifier": {"member_rate": mia}}, "probe": {"acc_f": knn},
            "verification": {"forget": {"tar": tar}},
            "relearn": {"model": {"5": relearn_model}, "prompt": {"5": relearn_prompt}}}


def test_the_gaps_are_the_audited_numbers_minus_the_oracles(tmp_path):
    ours, oracle = audit_of(61.0, 37.5, 12.0, 48.0, 9.0), audit_of(52.5, 41.0, 2.5, 30.0, 10.5)
    gap = with_oracle(ours, oracle, tmp_path)["gap"]
    assert gap == {"mia": 8.5, "knn_acc_f": -3.5, "tar_f": 9.5, "model": {"5": 18.0}, "prompt": {"5": -1.5}}
    oracle["verification"] = {}  # an oracle without verification pairs: no TAR gap, the others stay
    assert with_oracle(ours, oracle, tmp_path)["gap"]["tar_f"] is None
    assert "gap" not in with_oracle(ours, None, tmp_path)


def test_the_audit_table_names_the_methods_within_five_points_of_the_oracle_in_every_setting():
    def run(*knn_gaps):
        return {"plan": [], "tasks": [{"task": t, "audit": {"probe": {"acc_f": 40.0}, "gap": {"knn_acc_f": g}}}
                                      for t, g in enumerate(knn_gaps)]}

    near, far_once, below, far_below = run(4.9, -2.0), run(1.0, 5.1), run(-5.0, None), run(-7.0, 0.0)
    table = build_audit_table([("Near", near), ("Far once", far_once), ("Below", below), ("Far below", far_below)])
    assert table.notes == [f"kNN Acc_f gap: within {NEAR_ORACLE:g} points of the oracle in every setting: "
                           f"Near, Below"]
    assert near_oracle([("A", "0", {"gap": {"knn_acc_f": 7.0}})], [("kNN Acc_f gap", ("gap", "knn_acc_f")),
                                                                    ("kNN Acc_f", ("probe", "acc_f"))]) == [
        f"kNN Acc_f gap: within {NEAR_ORACLE:g} points of the oracle in every setting: none"]


def test_a_recipe_with_its_own_exclusion_is_parsed_as_names():
    args = parse_args("pretrain", forgetting=False, argv=["-d", "synthetic", "--exclude_classes", "a,b", "c"])
    assert split_names(args.exclude_classes) == ["a", "b", "c"]
    with pytest.raises(SystemExit):
        parse_args("pretrain", forgetting=False, argv=["-d", "synthetic", "--exclude_classes", "a", "--eval_only"])
    assert isinstance(args, argparse.Namespace)
