"""Failures a new user meets on a real run folder (issue 26's probes): each ends in one 'error:' line and a non-zero
status, or works, and never leaves a folder mixing two runs, a temporary file or silently wrong data.

One tiny one-task run is made once; each case works on a copy of it (or on an empty folder), all in parallel.
Read-only folders and a full disk are real: made with ``unshare`` (a private mount namespace), skipped without it.
"""
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, child_env, entry_point, run_entry_point, write_image_folder

from data.class_order import class_order
from test_bad_input import one_error_line, tiny_checkpoint
from util.files import read_json

NUM_CLASSES = 4


def can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


UNSHARE = can_unshare()


def in_namespace(setup: str, argv: list, after: str = "") -> list:
    """A command that runs ``setup`` (mounts) in a private mount namespace, then the entry point, then ``after``;
    the entry point's exit status is kept."""
    quoted = " ".join(f"'{a}'" for a in [sys.executable, *argv])
    return ["unshare", "-rm", "bash", "-c", f"{setup} && {{ {quoted}; rc=$?; {after or 'true'}; exit $rc; }}"]


def forget_flags(tmp: Path, *extra: str) -> list:
    return ["-d", "imagefolder", "--data_root", str(tmp / "data"), "-r", str(tmp / "model.pth"), "-n",
            "vit_face_tiny", "--val_ratio", "0.25", "-b", "8", "-e", "2", "--num_of_first_cls", "3",
            "--per_forget_cls", "1", "--num_tasks", "1", "--eval_every", "2", "--data_ratio", "1", "--log_level",
            "WARNING", "--no_tensorboard", "--num_workers", "1", *extra]


def copy_run(tmp: Path, name: str, edit=None) -> Path:
    """A copy of the finished run; ``edit(results)`` changes its results.json."""
    folder = tmp / name
    shutil.copytree(tmp / "done", folder)
    if edit is not None:
        results = read_json(folder / "results.json")
        edit(results)
        (folder / "results.json").write_text(json.dumps(results))
    return folder


def other_plan(results: dict) -> None:
    plan = results["plan"][0]
    plan["forget"], plan["remain"] = plan["remain"][:1], plan["remain"][1:] + plan["forget"]


def make_cases(tmp: Path) -> dict:
    """The folders of every case under ``tmp`` (from the finished run ``tmp/done``) and their command lines."""
    resume = ["train_own_forget_cl.py", *forget_flags(tmp, "--resume_run")]
    (copy_run(tmp, "no_config") / "config.json").unlink()
    copy_run(tmp, "copied_results", lambda r: r["config"].update(seed=7))
    copy_run(tmp, "other_plan", other_plan)
    with open(copy_run(tmp, "bad_log_tail") / "log.jsonl", "ab") as fh:
        fh.write(b'{"kind": "task0/train", "step": 1, "ta\xff\xfe\x00')
    killed = tmp / "killed_in_task_0"  # what a kill inside task 0 leaves: config.json and task 0's records only
    killed.mkdir()
    for name in ("config.json", "log.jsonl"):
        shutil.copy(tmp / "done" / name, killed / name)
    read_only = f"mount --bind {tmp / 'done'} {tmp / 'done'} && mount -o remount,bind,ro {tmp / 'done'}"
    (tmp / "full").mkdir()
    cases = {name: [*resume, "--outdir", str(tmp / name)]
             for name in ("no_config", "copied_results", "other_plan", "bad_log_tail", "killed_in_task_0")}
    cases.update({
        "long_name": ["train_own_forget_cl.py", *forget_flags(tmp, "--outdir", str(tmp / ("x" * 300)))],
        "long_path": ["train_own_forget_cl.py", *forget_flags(tmp, "--outdir", str(tmp / "/".join(["y" * 200] * 22)))],
        "long_data_root": ["train_own.py", "-d", "imagefolder", "--data_root", str(tmp / ("z" * 300)), "--outdir",
                           str(tmp / "pre_long")],
    })
    if UNSHARE:
        reevaluate = ["test_forget_cl.py", "--run_dir", str(tmp / "done"), "--device", "cpu", "--log_level", "WARNING"]
        cases["read_only"] = in_namespace(read_only, reevaluate)
        cases["read_only_table_dir"] = in_namespace(read_only, [*reevaluate, "--table_dir", str(tmp / "tables")])
        cases["disk_full"] = in_namespace(
            f"mount -t tmpfs -o size=64k tmpfs {tmp / 'full'}",
            ["train_own_forget_cl.py", *forget_flags(tmp, "--outdir", str(tmp / "full" / "run"))],
            after=f"echo left: $(cd {tmp / 'full'} && find . -name '*.tmp')")
    return cases


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reliability")
    write_image_folder(tmp / "data", NUM_CLASSES, train_per_class=8, test_per_class=4)
    tiny_checkpoint(tmp / "model.pth", num_classes=NUM_CLASSES)
    run_entry_point("train_own_forget_cl.py", *forget_flags(tmp, "--outdir", str(tmp / "done")))
    cases = make_cases(tmp)
    with ThreadPoolExecutor(4) as pool:
        done = {name: pool.submit(subprocess.run, argv if argv[0] == "unshare" else entry_point(*argv), cwd=ROOT,
                                  env=child_env(), capture_output=True, text=True, timeout=300)
                for name, argv in cases.items()}
    return tmp, {name: (f.result().returncode, f.result().stdout, f.result().stderr) for name, f in done.items()}


def test_resume_without_config_json_is_refused(runs):
    tmp, results = runs
    line = one_error_line(results["no_config"])
    assert f"{tmp / 'no_config' / 'config.json'} is missing" in line and "--resume_run" in line


def test_resume_of_results_copied_from_another_run_is_refused(runs):
    tmp, results = runs
    line = one_error_line(results["copied_results"])
    assert f"flags that differ from the config in {tmp / 'copied_results' / 'results.json'}: --seed 7 -> 1337" in line


def test_resume_with_another_task_plan_is_refused(runs):
    tmp, results = runs
    line = one_error_line(results["other_plan"])
    assert f"{tmp / 'other_plan' / 'results.json'} was trained on another task plan" in line


def test_resume_drops_an_undecodable_tail_of_the_log(runs):
    tmp, results = runs
    assert results["bad_log_tail"][0] == 0, results["bad_log_tail"][2][-2000:]
    assert (tmp / "bad_log_tail" / "log.jsonl").read_bytes() == (tmp / "done" / "log.jsonl").read_bytes()


def test_resume_after_a_kill_inside_task_0_keeps_one_copy_of_its_records(runs):
    tmp, results = runs
    assert results["killed_in_task_0"][0] == 0, results["killed_in_task_0"][2][-2000:]
    keys = [(r["kind"], r["step"], r.get("task"))
            for r in map(json.loads, (tmp / "killed_in_task_0" / "log.jsonl").read_text().splitlines())]
    assert keys and len(keys) == len(set(keys))


@pytest.mark.parametrize("case", ["long_name", "long_path", "long_data_root"])
def test_a_path_too_long_is_one_line(runs, case):
    line = one_error_line(runs[1][case])
    assert "File name too long" in line, line


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (a private mount namespace) for a read-only folder")
def test_reevaluating_a_read_only_run_folder(runs):
    tmp, results = runs
    line = one_error_line(results["read_only"])
    assert f"cannot write the tables into {tmp / 'done'} (Read-only file system); pass --table_dir" in line
    code, out, err = results["read_only_table_dir"]
    assert code == 0 and "Traceback" not in err, err[-2000:]
    assert "Pre-train" in out and (tmp / "tables" / "table.md").is_file()


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (a private mount namespace) for a small tmpfs")
def test_disk_full_while_saving_a_checkpoint(runs):
    tmp, results = runs
    line = one_error_line(results["disk_full"])
    assert "Backbone_task_0.pth (No space left on device); free some space" in line
    assert results["disk_full"][1].strip().endswith("left:"), results["disk_full"][1]  # no .tmp file was left


def test_sigterm_ends_a_run_like_ctrl_c(runs):
    tmp, _ = runs
    outdir = tmp / "terminated"
    proc = subprocess.Popen(entry_point("train_own_forget_cl.py", *forget_flags(tmp, "-e", "500", "--outdir",
                                                                                 str(outdir))),
                            cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    while not (outdir / "log.jsonl").exists() and proc.poll() is None and time.monotonic() - started < 120:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("terminated: finished tasks are saved"), err[-2000:]


def test_ctrl_c_in_reevaluation_does_not_advise_resume(monkeypatch, capsys, tmp_path):
    def interrupted(path):
        raise KeyboardInterrupt

    (tmp_path / "results.json").write_text("{}")
    monkeypatch.setattr("util.files.read_json", interrupted)
    monkeypatch.setattr(sys, "argv", ["test_forget_cl.py", "--run_dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "test_forget_cl.py"), run_name="__main__")
    assert exit_.value.code == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: ") and "--resume_run" not in lines[0], lines
