"""Undoing a forgetting request (engine/undo.py, undo_forget.py) on a short real two-task GS-LoRA run.

Undoing the last task gives back the saved model from before it (the pre-trained one for task 0) within float
tolerance, and that task's Acc_f returns to its before-value; undoing an earlier task equals the pre-trained weights
plus the later tasks' updates, recomputed in numpy from the saved factors. Bad requests are one-line errors that
write nothing.
"""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import IMAGE_SIZE, tiny_settings, tiny_tasks

import undo_forget
from engine import undo
from engine.forgetting import run_forgetting
from gs_lora import GSLoRA
from model import build_model, load_model_weights
from run_setup import run_main
from util.checkpoint import load_checkpoint, save_checkpoint
from util.errors import UserError
from util.run_log import RunLog

ATOL = 1e-6  # float32 rounding of W + d - d, for weights of order 1


@pytest.fixture(scope="module")
def tiny_run(tiny_data, pretrained_state, tmp_path_factory):
    """A finished two-task GS-LoRA run whose config points at its pre-trained file; returns its folder."""
    folder = tmp_path_factory.mktemp("undo")
    settings = tiny_settings(folder / "run", epochs=6)
    settings.model_args["image_size"] = IMAGE_SIZE  # what a real run records, and the report reads
    save_checkpoint(folder / "pre.pth", model=pretrained_state, model_args=settings.model_args)
    settings.config = {"data_mode": "tiny", "data_root": "", "cache_dir": "", "synthetic_seed": 0,
                       "val_ratio": 0.2, "seed": 0, "resume": str(folder / "pre.pth")}
    model = build_model(**settings.model_args)
    model.load_state_dict(pretrained_state)
    method = GSLoRA(model, rank=4, bound=15.0, beta=0.5, alpha=1e-3)
    run_forgetting(method, tiny_data, tiny_tasks(2), settings, RunLog(None))
    return folder / "run"


def results_of(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def saved_weights(run_dir, task):
    return load_checkpoint(run_dir / "task-level" / f"Backbone_task_{task}.pth")["model"]


def assert_same_weights(state, reference):
    assert state.keys() == reference.keys()
    for key, value in reference.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=ATOL, msg=key)


def test_lora_update_is_scaling_times_b_times_a():
    a = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.5]])  # rank 2 x in 3
    b = torch.tensor([[2.0, 1.0], [-1.0, 4.0], [0.5, 0.0], [1.0, -3.0]])  # out 4 x rank 2
    update = undo.lora_update({"blocks.0.fc.lora_A": a, "blocks.0.fc.lora_B": b}, scaling=0.25)
    expected = 0.25 * b.double().numpy() @ a.double().numpy()
    assert list(update) == ["blocks.0.fc.weight"]
    np.testing.assert_allclose(update["blocks.0.fc.weight"].double().numpy(), expected, rtol=1e-6)


def test_undoing_the_last_task_gives_back_the_model_before_it(tiny_run, tiny_data):
    content = undo.undo_task(tiny_run, 1)
    assert content["undo"]["exact"] and content["undo"]["final_task"] == 1
    assert_same_weights(content["model"], saved_weights(tiny_run, 0))
    task = results_of(tiny_run)["tasks"][1]
    assert task["acc_f"] < task["acc_f_before"] - 20  # the task forgot, so the undo has something to give back
    sets = {"forget": task["forget_classes"], "remain": results_of(tiny_run)["plan"][1]["remain"]}
    accuracy = undo.class_set_accuracies(content["model"], content["model_args"], tiny_data.test, sets,
                                         torch.device("cpu"), 64)
    assert accuracy["forget"] == task["acc_f_before"] and accuracy["remain"] == task["acc_r_before"]


def test_undoing_the_only_finished_task_gives_back_the_pretrained_model(tiny_run, pretrained_state, tmp_path):
    """A run stopped after task 0 (results.json lists one task): undoing task 0 is exact."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    results = results_of(run)
    results["tasks"] = results["tasks"][:1]
    (run / "results.json").write_text(json.dumps(results))
    content = undo.undo_task(run, 0)
    assert content["undo"]["exact"]
    model = build_model(**content["model_args"])
    load_model_weights(model, pretrained_state)
    assert_same_weights(content["model"], model.state_dict())


def test_undoing_an_earlier_task_keeps_the_later_updates(tiny_run, pretrained_state):
    """Undoing task 0 of two: W_pre + s B_1 A_1, with the update recomputed in numpy from the saved factors."""
    content = undo.undo_task(tiny_run, 0)
    assert not content["undo"]["exact"]
    delta = torch.load(tiny_run / "task-level" / "lora_delta_task_1.pth", weights_only=True)
    factors, changed = delta["factors"], 0
    for key, value in content["model"].items():
        expected = pretrained_state[key].double().numpy()
        layer = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and f"{layer}.lora_A" in factors:
            b, a = factors[f"{layer}.lora_B"].double().numpy(), factors[f"{layer}.lora_A"].double().numpy()
            expected = expected + delta["scaling"] * b @ a
            changed += 1
        np.testing.assert_allclose(value.double().numpy(), expected, rtol=0, atol=ATOL, err_msg=key)
    assert changed == 4  # fc1 and fc2 of both blocks


def test_report_pairs_the_undone_model_with_the_one_before_the_task(tiny_run, tiny_data, monkeypatch):
    monkeypatch.setattr(undo_forget, "resolve_root", lambda *args: None)
    monkeypatch.setattr(undo_forget, "build_data", lambda *args: tiny_data)
    report = undo_forget.evaluate_undo(tiny_run, undo.undo_task(tiny_run, 1), torch.device("cpu"), 64, "original")
    accuracy = report["accuracy"]
    assert list(accuracy) == ["before task 1", "final (after task 1)", "task 1 undone"]
    assert accuracy["task 1 undone"] == accuracy["before task 1"] != accuracy["final (after task 1)"]
    assert list(accuracy["before task 1"]) == ["forgotten in task 0", "forgotten in task 1 (undone)", "remembered"]
    assert min(report["weight_distance"], key=report["weight_distance"].get) == "after task 0"
    assert report["weight_distance"]["after task 0"] < 1e-6 < report["weight_distance"]["pre-trained"]
    assert "<- nearest" in undo_forget.format_report(report)


def test_the_entry_point_writes_a_loadable_checkpoint_and_never_overwrites(tiny_run, tmp_path):
    out = tmp_path / "undone.pth"
    undo_forget.main(["--run_dir", str(tiny_run), "--task", "1", "--out", str(out), "--no_eval"])
    saved = load_checkpoint(out)
    assert saved["undo"]["task"] == 1
    assert_same_weights(saved["model"], saved_weights(tiny_run, 0))
    before = out.read_bytes()
    with pytest.raises(UserError, match="exists"):
        undo_forget.main(["--run_dir", str(tiny_run), "--task", "0", "--out", str(out), "--no_eval"])
    assert out.read_bytes() == before


def test_a_run_without_lora_updates_is_refused(tiny_run, tmp_path):
    run = tmp_path / "ewc"
    shutil.copytree(tiny_run, run)
    for path in (run / "task-level").glob("lora_delta_task_*.pth"):
        path.unlink()
    with pytest.raises(UserError, match="saved no LoRA update for task 1"):
        undo.undo_task(run, 1)
    with pytest.raises(UserError, match="not found"):
        undo.undo_task(tmp_path, 0)


def test_a_task_outside_the_run_is_one_error_line_and_writes_nothing(tiny_run, tmp_path, capsys):
    out = tmp_path / "out" / "undone.pth"
    argv = ["--run_dir", str(tiny_run), "--task", "2", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: undo_forget.main(argv))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: task 2 is not a finished task of {tiny_run} (its finished tasks: 0-1)\n"
    assert not out.parent.exists()


def refused(argv, capsys) -> str:
    """Runs undo_forget as its __main__ does; it must exit 2 with one 'error:' line, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: undo_forget.main(argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def files_under(folder) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def evaluable_run(tiny_run, tiny_data, tmp_path, monkeypatch):
    """A copy of the tiny run that undo_forget can evaluate (its data are the in-memory tiny images)."""
    monkeypatch.setattr(undo_forget, "resolve_root", lambda *args: None)
    monkeypatch.setattr(undo_forget, "build_data", lambda *args: tiny_data)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    return run


def test_a_checkpoint_whose_report_would_be_the_runs_results_json_is_refused(evaluable_run, capsys):
    """--out RUN/results.pth: the report beside it would be RUN/results.json, the run's own results."""
    before = files_under(evaluable_run)
    line = refused(["--run_dir", str(evaluable_run), "--task", "1", "--out", str(evaluable_run / "results.pth")],
                   capsys)
    assert f"{evaluable_run / 'results.json'} exists" in line
    assert files_under(evaluable_run) == before  # nothing written, nothing changed


def test_a_json_checkpoint_name_would_be_overwritten_by_its_report_and_is_refused(evaluable_run, tmp_path, capsys):
    out = tmp_path / "out" / "model.json"
    line = refused(["--run_dir", str(evaluable_run), "--task", "1", "--out", str(out)], capsys)
    assert f"--out {out}" in line and ".json" in line
    assert not out.parent.exists()


def test_an_existing_report_is_refused_before_the_checkpoint_is_written(evaluable_run, tmp_path, capsys):
    report = tmp_path / "undone.json"
    report.write_text('{"kept": true}')
    argv = ["--run_dir", str(evaluable_run), "--task", "1", "--out", str(tmp_path / "undone.pth")]
    line = refused(argv, capsys)
    assert f"{report} exists" in line
    assert report.read_text() == '{"kept": true}' and not (tmp_path / "undone.pth").exists()
    undo_forget.main([*argv, "--no_eval"])  # without a report to write, the file beside it does not matter
    assert (tmp_path / "undone.pth").exists() and report.read_text() == '{"kept": true}'
