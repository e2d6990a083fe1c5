"""Reliability of a continual run through the real entry points: a run killed inside a task and resumed gives the
numbers of an uninterrupted one, a resume with other protocol flags is refused without touching the run, and the
run folder is re-evaluated from any directory and checked against its results.json."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import child_env, entry_point, run_entry_point, write_image_folder

NUM_CLASSES = 10
COST_KEYS = {"wall_time_s", "peak_memory_mb", "peak_memory_kind"}  # machine-dependent, not results
KILLED_TASK = 2


def run(script: str, *args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    return run_entry_point(script, *args, cwd=cwd, ok=ok)


def forgetting_args(outdir: str, *extra: str) -> list[str]:
    """A 4-task GS-LoRA run on 8 of the 10 classes; relative paths, valid from the dataset's parent folder."""
    return ["-d", "imagefolder", "--data_root", "data", "-r", "pre/best.pth", "--val_ratio", "0.25",
            "--num_of_first_cls", "8", "--per_forget_cls", "2", "--num_tasks", "4", "-e", "24", "-b", "4",
            "--lr", "1e-2", "--data_ratio", "1", "--eval_every", "2", "--BND", "15",
            "--cl_beta_list", "0.5", "0.5", "0.5", "0.5", "--alpha", "1e-3", "--lora_rank", "4",
            "--log_level", "WARNING", "--no_tensorboard", "--num_workers", "1", "--outdir", outdir, *extra]


def read_records(path: Path) -> list[dict]:
    """The complete JSON lines of log.jsonl (a line cut short by a kill is skipped)."""
    records = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


def finished_tasks(outdir: Path) -> int:
    try:
        return len(json.loads((outdir / "results.json").read_text())["tasks"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_inside_task(cmd: list[str], cwd: Path, outdir: Path, task: int, deadline_s: float = 300) -> dict:
    """Starts a run and SIGKILLs it once ``task`` tasks are finished and task ``task`` has logged a training
    record (so the kill lands inside that task's training); returns what the folder held at the kill."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    started = time.monotonic()
    try:
        # Niced, so that on a busy machine the poller is not starved while the task it waits for ends.
        os.setpriority(os.PRIO_PROCESS, proc.pid, 5)
        while proc.poll() is None and time.monotonic() - started < deadline_s:
            records = read_records(outdir / "log.jsonl") if finished_tasks(outdir) >= task else []
            if any(r.get("task") == task for r in records):
                break
            time.sleep(0.005)
        exited_early = proc.poll() is not None
        proc.kill()
    finally:
        stderr = proc.communicate()[1]
    assert not exited_early, f"the run ended before task {task} started training: {stderr[-2000:]}"
    return {"tasks": finished_tasks(outdir),
            "records": sum(r.get("task") == task for r in read_records(outdir / "log.jsonl"))}


def results_without_cost(results: dict) -> dict:
    """results.json minus timing, memory and the run folder's own path (which differs between A and B)."""
    tasks = [{k: v for k, v in t.items() if k not in COST_KEYS} for t in results["tasks"]]
    return {"tasks": tasks, "plan": results["plan"], "pretrained": results["pretrained"]}


def assert_same(a, b, where: str = "") -> None:
    """Recursive equality; floats may differ by 1e-9."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, f"{where}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-9), f"{where}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Pre-trains once, then runs A straight through and B killed inside task 2 and resumed (same command).

    A copy of B as the kill left it is kept for the refused resumes."""
    tmp = tmp_path_factory.mktemp("resume")
    write_image_folder(tmp / "data", NUM_CLASSES, train_per_class=8, test_per_class=4)
    run("train_own.py", "-d", "imagefolder", "--data_root", "data", "--val_ratio", "0.25", "-n", "vit_face_tiny",
        "-head", "softmax", "-e", "12", "-b", "16", "--lr", "3e-3", "--warmup-epochs", "0", "--log_level", "WARNING",
        "--no_tensorboard", "--num_workers", "1", "--outdir", "pre", cwd=tmp)
    run("train_own_forget_cl.py", *forgetting_args("A"), cwd=tmp)
    killed = entry_point("train_own_forget_cl.py", *forgetting_args("B"))
    at_kill = kill_inside_task(killed, tmp, tmp / "B", KILLED_TASK)
    shutil.copytree(tmp / "B", tmp / "B_killed")
    run("train_own_forget_cl.py", *forgetting_args("B", "--resume_run"), cwd=tmp)
    return {"tmp": tmp, "A": tmp / "A", "B": tmp / "B", "B_killed": tmp / "B_killed", "at_kill": at_kill}


def test_resumed_run_equals_uninterrupted_run(runs):
    assert runs["at_kill"]["tasks"] == KILLED_TASK, "the kill missed task 2: make its training longer"
    assert runs["at_kill"]["records"] > 0, "the kill landed before task 2 logged anything"
    a = json.loads((runs["A"] / "results.json").read_text())
    b = json.loads((runs["B"] / "results.json").read_text())
    assert [t["task"] for t in a["tasks"]] == [0, 1, 2, 3]
    for key in ("acc_f", "acc_r", "acc_o", "h_mean", "acc_f_before", "acc_r_before", "acc_o_before", "plain",
                "selection", "optimizer_steps", "group_norms"):
        assert all(key in t for t in a["tasks"]), key
    assert_same(results_without_cost(a), results_without_cost(b), "results")
    last = f"task-level/Backbone_task_{len(a['tasks']) - 1}.pth"
    weights_a = torch.load(runs["A"] / last, weights_only=True)["model"]
    weights_b = torch.load(runs["B"] / last, weights_only=True)["model"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_resume_drops_the_records_of_the_killed_task(runs):
    records_b = read_records(runs["B"] / "log.jsonl")
    assert len(records_b) == len((runs["B"] / "log.jsonl").read_text().splitlines()), "a cut-short line survived"
    pairs = [(r["kind"], r["step"]) for r in records_b if r.get("task") == KILLED_TASK]
    assert pairs and len(pairs) == len(set(pairs))
    keys_a = [(r["kind"], r["step"], r.get("task")) for r in read_records(runs["A"] / "log.jsonl")]
    assert [(r["kind"], r["step"], r.get("task")) for r in records_b] == keys_a


@pytest.mark.parametrize("changed, flag", [(["--seed", "7"], "--seed"), (["--method", "ewc"], "--method")])
def test_resume_with_other_protocol_flags_is_refused(runs, changed, flag):
    folder = runs["B_killed"]
    before = {name: (folder / name).read_bytes() for name in ("config.json", "results.json", "log.jsonl")}
    done = run("train_own_forget_cl.py", *forgetting_args(str(folder), "--resume_run", *changed), cwd=runs["tmp"],
               ok=False)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and flag in errors[0] and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert {name: (folder / name).read_bytes() for name in before} == before


def test_reevaluation_works_from_another_directory(runs, tmp_path):
    done = run("test_forget_cl.py", "--run_dir", str(runs["A"]), "--device", "cpu", "--log_level", "WARNING",
               cwd=tmp_path)
    assert "Pre-train" in done.stdout and "4-2 Acc_f" in done.stdout  # task 3: 4 classes known, 2 forgotten
    assert list(tmp_path.iterdir()) == []
    config = json.loads((runs["A"] / "config.json").read_text())
    assert config["data_root"] == str(runs["tmp"] / "data") and Path(config["resume"]).is_absolute()


def test_reevaluation_refuses_results_that_disagree_with_checkpoints(runs):
    edited = runs["tmp"] / "A_edited"
    shutil.copytree(runs["A"], edited)
    results = json.loads((edited / "results.json").read_text())
    results["tasks"][1]["acc_f"] += 10
    (edited / "results.json").write_text(json.dumps(results))
    done = run("test_forget_cl.py", "--run_dir", str(edited), "--device", "cpu", "--log_level", "WARNING",
               cwd=runs["tmp"], ok=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "results.json" in errors[0] and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_a_run_made_before_a_flag_existed_resumes_at_its_default_and_is_refused_with_another_value(tmp_path):
    """config.json and results.json of an older version lack --lora_pos and --grouping: the run had their defaults
    (FFN, block), so resuming with them is accepted and resuming with --lora_pos Attention is refused."""
    from config import parse_args
    from run_setup import check_forgetting_folder, flags_as_json
    from util.errors import UserError

    argv = ["--method", "gs_lora", "--outdir", str(tmp_path), "--resume_run"]
    old = {k: v for k, v in flags_as_json(parse_args("x", argv=argv)).items() if k not in ("lora_pos", "grouping")}
    (tmp_path / "config.json").write_text(json.dumps(old))
    (tmp_path / "results.json").write_text(json.dumps({"config": old, "tasks": []}))
    check_forgetting_folder(parse_args("x", argv=argv), tmp_path)
    with pytest.raises(UserError, match="--lora_pos 'FFN' -> 'Attention'"):
        check_forgetting_folder(parse_args("x", argv=argv + ["--lora_pos", "Attention"]), tmp_path)
