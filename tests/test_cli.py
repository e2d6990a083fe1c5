"""The entry points end to end on a tiny image folder: pre-train, forget in two tasks, re-evaluate the checkpoints."""
import json

import pytest
import torch
from conftest import run_entry_point, write_image_folder

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
