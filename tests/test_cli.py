"""The entry points end to end on a tiny image folder: pre-train, forget in two tasks, re-evaluate the checkpoints."""
import json

import pytest
import torch
from conftest import run_entry_point, write_image_folder

from data.class_order import class_order
from test_forget_cl import reevaluate


def run(script: str, *args: str) -> str:
    return run_entry_point(script, *args).stdout


@pytest.fixture(scope="module")
def forgetting_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    write_image_folder(tmp / "data", num_classes=6, train_per_class=16, test_per_class=6)
    common = ["-d", "imagefolder", "--data_root", str(tmp / "data"), "--log_level", "WARNING", "--val_ratio", "0.25"]
    out = run("train_own.py", *common, "-n", "vit_face_tiny", "-head", "softmax", "-e", "8", "-b", "16",
              "--lr", "3e-3", "--warmup-epochs", "0", "--outdir", str(tmp / "pre"))
    assert "test accuracy (plain convention)" in out
    table = run("train_own_forget_cl.py", *common, "-r", str(tmp / "pre" / "best.pth"), "--num_of_first_cls", "4",
                "--per_forget_cls", "2", "--num_tasks", "2", "-e", "4", "-b", "8", "--lr", "1e-2", "--data_ratio", "1",
                "--eval_every", "5", "--BND", "15", "--cl_beta_list", "0.5", "0.5", "--alpha", "1e-3",
                "--lora_rank", "4", "--outdir", str(tmp / "run"))
    return tmp, table


def test_order_seed_keeps_the_tasks_while_seed_redraws_the_rest(forgetting_run):
    """--seed 5 alone would forget other classes (its order differs where the two tasks draw theirs); with
    --order_seed 1337 the run forgets what the default seed's run forgot, task by task."""
    tmp, _ = forgetting_run
    assert class_order(6, 5)[2:] != class_order(6, 1337)[2:]
    run("train_own_forget_cl.py", "-d", "imagefolder", "--data_root", str(tmp / "data"), "--log_level", "WARNING",
        "--val_ratio", "0.25", "-r", str(tmp / "pre" / "best.pth"), "--num_of_first_cls", "4", "--per_forget_cls", "2",
        "--num_tasks", "2", "-e", "1", "-b", "8", "--data_ratio", "1", "--lora_rank", "4", "--seed", "5",
        "--order_seed", "1337", "--outdir", str(tmp / "order_seed"))
    default, reseeded = (json.loads((tmp / run_dir / "results.json").read_text()) for run_dir in ("run", "order_seed"))
    assert [task["forget"] for task in reseeded["plan"]] == [task["forget"] for task in default["plan"]]
    assert (reseeded["config"]["seed"], reseeded["config"]["order_seed"]) == (5, 1337)


def test_pretraining_writes_checkpoint_and_per_class_report(forgetting_run):
    tmp, _ = forgetting_run
    report = json.loads((tmp / "pre" / "test_accuracy.json").read_text())
    assert set(report["per_class_plain"]) == {f"class_{c}" for c in range(6)}
    checkpoint = torch.load(tmp / "pre" / "best.pth", weights_only=True)
    assert checkpoint["model_args"]["net"] == "vit_face_tiny" and "config" in checkpoint


def test_forgetting_prints_table_and_writes_results(forgetting_run):
    tmp, table = forgetting_run
    assert "Pre-train" in table and "gs_lora" in table and "4-2 Acc_o" in table  # task 1: 4 classes known, 2 forgotten
    results = json.loads((tmp / "run" / "results.json").read_text())
    assert [t["task"] for t in results["tasks"]] == [0, 1]
    assert (tmp / "run" / "config.json").exists() and (tmp / "run" / "tensorboard").is_dir()
    assert all((tmp / "run" / "task-level" / f"Backbone_task_{i}.pth").exists() for i in (0, 1))


def test_reevaluation_from_checkpoints_agrees_with_results(forgetting_run):
    tmp, _ = forgetting_run
    saved = json.loads((tmp / "run" / "results.json").read_text())
    recomputed, worst = reevaluate(tmp / "run", torch.device("cpu"), batch_size=32)
    assert worst < 1e-6
    for old, new in zip(saved["tasks"], recomputed["tasks"]):
        for key in ("acc_f", "acc_r", "acc_o", "h_mean"):
            assert old[key] == pytest.approx(new[key], abs=1e-6) if old[key] is not None else new[key] is None
    run("test_forget_cl.py", "--run_dir", str(tmp / "run"), "--log_level", "WARNING")
    assert "H" in (tmp / "run" / "table.md").read_text() and (tmp / "run" / "table.csv").exists()


def test_reevaluation_uses_the_saved_plan_of_a_one_task_continual_missing_class_run(forgetting_run):
    """train_own_forget_cl.py --num_tasks 1 --open_cls_num O trains with the continual layout (missing classes at
    the start of the order), unlike train_own_forget.py; re-evaluation must use the plan the run saved."""
    tmp, _ = forgetting_run
    common = ["-d", "imagefolder", "--data_root", str(tmp / "data"), "--log_level", "WARNING", "--val_ratio", "0.25"]
    # A weak model (one epoch), so that accuracies differ between class sets and a wrong plan shows in the numbers.
    run("train_own.py", *common, "-n", "vit_face_tiny", "-head", "softmax", "-e", "1", "-b", "16", "--lr", "1e-3",
        "--warmup-epochs", "0", "--outdir", str(tmp / "weak"))
    run("train_own_forget_cl.py", *common, "-r", str(tmp / "weak" / "best.pth"), "--num_of_first_cls", "4",
        "--per_forget_cls", "2", "--num_tasks", "1", "--open_cls_num", "2", "-e", "2", "-b", "8", "--lr", "1e-2",
        "--data_ratio", "1", "--eval_every", "5", "--BND", "15", "--alpha", "1e-3", "--lora_rank", "4",
        "--outdir", str(tmp / "open"))
    saved = json.loads((tmp / "open" / "results.json").read_text())
    assert saved["plan"][0]["missing"] and saved["tasks"][0]["acc_m"] is not None
    recomputed, worst = reevaluate(tmp / "open", torch.device("cpu"), batch_size=32)
    assert worst < 1e-6
    assert recomputed["tasks"][0]["acc_m"] == pytest.approx(saved["tasks"][0]["acc_m"], abs=1e-9)


@pytest.fixture(scope="module")
def named_run(forgetting_run):
    """Two tasks of different sizes named in a plan file: task 0 forgets class_5 and class_1, task 1 class_3."""
    tmp, _ = forgetting_run
    plan = tmp / "plan.json"
    plan.write_text(json.dumps({"tasks": [["class_5", "class_1"], ["class_3"]]}))
    args = named_run_args(tmp, plan)
    return tmp, args, run("train_own_forget_cl.py", *args)


def named_run_args(tmp, plan):
    return ["-d", "imagefolder", "--data_root", str(tmp / "data"), "--log_level", "WARNING", "--val_ratio", "0.25",
            "-r", str(tmp / "pre" / "best.pth"), "--plan", str(plan), "-e", "4", "-b", "8", "--lr", "1e-2",
            "--data_ratio", "1", "--eval_every", "5", "--BND", "15", "--alpha", "1e-3", "--lora_rank", "4",
            "--outdir", str(tmp / "named")]


def test_forgetting_by_names_forgets_those_classes_and_names_them(named_run):
    tmp, _, table = named_run
    results = json.loads((tmp / "named" / "results.json").read_text())
    plan = results["plan"]
    assert [p["forget"] for p in plan] == [[5, 1], [3]] and [p["forget_names"] for p in plan] == [
        ["class_5", "class_1"], ["class_3"]]
    assert plan[0]["remain"] == [0, 2, 3, 4] and plan[1]["remain"] == [0, 2, 4] and plan[1]["old"] == [5, 1]
    assert [t["forget_names"] for t in results["tasks"]] == [["class_5", "class_1"], ["class_3"]]
    assert "6-2 (class_5, class_1) H" in table and "4-1 (class_3) H" in table


def test_undo_by_class_name_undoes_the_task_that_forgot_it(named_run):
    tmp, _, _ = named_run
    out = run("undo_forget.py", "--run_dir", str(tmp / "named"), "--forget_class", "class_1", "--no_eval")
    assert "without task 0" in out and (tmp / "named" / "undo" / "Backbone_without_task_0.pth").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--forget_class", "class_7"], "no class named 'class_7'; closest: "),
    (["--forget_class", "class_0"], "no task of"),
    (["--forget_class", "class_3", "--task", "1"], "argument --task: not allowed with argument --forget_class"),
    ([], "one of the arguments --task --forget_class is required"),
])
def test_undo_by_a_bad_name_is_one_error_line(named_run, argv, message):
    tmp, _, _ = named_run
    done = run_entry_point("undo_forget.py", "--run_dir", str(tmp / "named"), "--no_eval", *argv, ok=False)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


def test_unknown_name_in_a_forgetting_run_is_one_error_line_with_the_closest_names(forgetting_run):
    tmp, _ = forgetting_run
    done = run_entry_point("train_own_forget.py", "-d", "imagefolder", "--data_root", str(tmp / "data"), "-r",
                           str(tmp / "pre" / "best.pth"), "--forget_classes", "class_1,clas_2", "--outdir",
                           str(tmp / "typo"), "--log_level", "WARNING", ok=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "error: --forget_classes: no class named 'clas_2'; closest: class_2" in done.stderr
    assert not (tmp / "typo").exists()


def test_resuming_a_named_run_with_another_plan_is_refused(named_run):
    tmp, args, _ = named_run
    plan = tmp / "plan.json"  # the same file, edited: its content is what counts
    plan.write_text(json.dumps({"tasks": [["class_5", "class_1"], ["class_2"]]}))
    before = (tmp / "named" / "results.json").read_bytes()
    done = run_entry_point("train_own_forget_cl.py", *named_run_args(tmp, plan), "--resume_run", ok=False)
    assert done.returncode == 2 and "error: --resume_run with flags that differ" in done.stderr, done.stderr
    assert "class_2" in done.stderr and (tmp / "named" / "results.json").read_bytes() == before
