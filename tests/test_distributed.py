"""Multi-process training (util/distributed.py): two CPU processes with the gloo backend train what one process
trains, and only rank 0 writes.

The two-process runs use the tiny Face Transformer (no dropout) on a tiny image folder. Pre-training goes through
torchrun itself (``python -m torch.distributed.run``). The forgetting run starts its two processes directly with
the environment torchrun gives its workers (RANK, WORLD_SIZE, MASTER_ADDR ...), each in its own working directory
with a relative --outdir, so that anything rank 1 wrote would show up in its own folder.

Tolerance: each process averages the gradient of its half of every batch (equal halves here), which is the
single-process gradient summed in another order, so weights agree to float32 rounding (measured 1.7e-6 after 8
epochs of AdamW pre-training, 6e-8 after the forgetting task; asserted within 1e-5) and every accuracy is the same.
GS-LoRA runs with a forget bound the hinge never reaches (the loss is then linear in per-sample terms) and plain SGD
(a gradient-scale mistake changes the step); its task takes Acc_f from 50 to 0, so the weights do move.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, child_env, entry_point, make_images, run_entry_point, write_image_folder

from data.folders import BatchLoader
from util.errors import UserError

WEIGHT_TOLERANCE = 1e-5
COST_KEYS = {"wall_time_s", "peak_memory_mb", "peak_memory_kind"}  # timings differ between runs
DATA = ["-d", "imagefolder", "--val_ratio", "0.25", "--num_workers", "1"]
PRETRAIN = ["-n", "vit_face_tiny", "-head", "softmax", "-e", "8", "-b", "16", "--lr", "3e-3", "--warmup-epochs", "0",
            "--no_tensorboard"]
# 4 remain classes x 12 training images and 2 forget classes x 12: batches of 8 split 4 + 4 on two processes.
FORGET = ["--num_of_first_cls", "4", "--per_forget_cls", "2", "--num_tasks", "1", "-e", "4", "-b", "8", "--opt", "sgd",
          "--lr", "3", "--warmup-epochs", "0", "--data_ratio", "1", "--eval_every", "4", "--BND", "50", "--beta", "1",
          "--alpha", "1e-3", "--lora_rank", "4", "--log_level", "INFO", "--outdir", "run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two(script: str, args: list[str], folders: list[Path]) -> list[subprocess.CompletedProcess]:
    """Starts rank 0 and rank 1 of a two-process gloo launch, each in its own folder; both must exit 0."""
    port = str(free_port())
    procs = []
    for rank, folder in enumerate(folders):
        folder.mkdir(parents=True, exist_ok=True)
        env = {**child_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2",
               "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"}
        procs.append(subprocess.Popen(entry_point(script, *args), cwd=folder, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    for rank, result in enumerate(done):
        assert result.returncode == 0, f"rank {rank}: {result.stderr[-2000:]}"
    return done


def torchrun(script: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / script), *args]
    done = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def max_weight_difference(a: Path, b: Path) -> float:
    first, second = (torch.load(p, weights_only=True)["model"] for p in (a, b))
    assert first.keys() == second.keys()
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


def files_under(folder: Path) -> list[str]:
    """The files of a run folder; TensorBoard event files by kind (their names hold the time and process id)."""
    names = (str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return sorted("tensorboard/events" if name.startswith("tensorboard/events") else name for name in names)


def key_layout(value):
    """The nested keys of a JSON value (lists by position): what 'identical in layout' compares."""
    if isinstance(value, dict):
        return {k: key_layout(v) for k, v in value.items()}
    if isinstance(value, list):
        return [key_layout(v) for v in value]
    return type(value).__name__


def assert_close(value, expected, where: str = "results") -> None:
    """Equal JSON values, floats within 1e-4 (group norms are sums of float32 weights; accuracies must be equal)."""
    if isinstance(expected, dict):
        assert value.keys() == expected.keys(), where
        for k in expected:
            assert_close(value[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert len(value) == len(expected), where
        for i, (v, e) in enumerate(zip(value, expected)):
            assert_close(v, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert value == pytest.approx(expected, abs=1e-4), where
    else:
        assert value == expected, where


def log_records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Pre-training with one process and with two (torchrun), then forgetting from the one-process model with one
    process and with two; returns the folder holding them."""
    tmp = tmp_path_factory.mktemp("distributed")
    write_image_folder(tmp / "data", num_classes=6, train_per_class=16, test_per_class=6)
    data = [*DATA, "--data_root", str(tmp / "data")]
    run_entry_point("train_own.py", *data, *PRETRAIN, "--log_level", "WARNING", "--outdir", str(tmp / "pre1"))
    torchrun("train_own.py", *data, *PRETRAIN, "--log_level", "WARNING", "--outdir", str(tmp / "pre2"))
    forget = [*data, "-r", str(tmp / "pre1" / "best.pth"), *FORGET]
    (tmp / "one").mkdir()
    one = run_entry_point("train_own_forget_cl.py", *forget, cwd=tmp / "one")
    two = launch_two("train_own_forget_cl.py", forget, [tmp / "rank0", tmp / "rank1"])
    (tmp / "stdout_one.txt").write_text(one.stdout)
    (tmp / "stdout_two.txt").write_text(two[0].stdout + two[1].stdout)
    return tmp


def test_two_process_pretraining_matches_one_process(runs):
    one, two = runs / "pre1", runs / "pre2"
    assert files_under(two) == files_under(one)
    assert max_weight_difference(one / "best.pth", two / "best.pth") < WEIGHT_TOLERANCE
    report_one, report_two = (json.loads((d / "test_accuracy.json").read_text()) for d in (one, two))
    assert report_two == report_one
    records_one, records_two = log_records(one), log_records(two)
    assert len(records_two) == len(records_one)  # a second writer would have appended its own records
    for a, b in zip(records_one, records_two):
        assert a.keys() == b.keys()
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5) and b["train_acc"] == a["train_acc"]


def test_two_process_forgetting_matches_one_process(runs):
    one, two = runs / "one" / "run", runs / "rank0" / "run"
    assert files_under(two) == files_under(one)
    results_one, results_two = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert key_layout(results_two) == key_layout(results_one)
    task_one, task_two = results_one["tasks"][0], results_two["tasks"][0]
    assert_close({k: v for k, v in task_two.items() if k not in COST_KEYS},
                 {k: v for k, v in task_one.items() if k not in COST_KEYS})
    assert results_two["pretrained"] == results_one["pretrained"]
    assert max_weight_difference(one / "task-level" / "Backbone_task_0.pth",
                                 two / "task-level" / "Backbone_task_0.pth") < WEIGHT_TOLERANCE


def test_only_rank_zero_writes_files_logs_and_prints(runs):
    assert not (runs / "rank1" / "run").exists()  # rank 1's relative --outdir: no results, checkpoint, log or event
    one, two = runs / "one" / "run", runs / "rank0" / "run"
    assert len(log_records(two)) == len(log_records(one))
    assert len(list((two / "tensorboard").iterdir())) == 1  # event files are named by process id
    run_log_one, run_log_two = ((d / "run.log").read_text().splitlines() for d in (one, two))
    assert run_log_one and len(run_log_two) == len(run_log_one)  # INFO lines of rank 0 alone
    printed_one, printed_two = ((runs / f"stdout_{n}.txt").read_text() for n in ("one", "two"))
    assert printed_two.count("gs_lora") == printed_one.count("gs_lora") == 1  # the table, printed once


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_loader_splits_every_batch_of_the_single_process_loader(world):
    data = make_images(5, seed=0)  # 40 images; batches of 16, 16 and 8
    indices = torch.arange(len(data))
    single = [labels for _, labels in BatchLoader(data, indices, 16, shuffle=True, seed=3, tag="t")]
    shards = [[labels for _, labels in BatchLoader(data, indices, 16, shuffle=True, seed=3, tag="t",
                                                   shard=(rank, world))] for rank in range(world)]
    assert all(len(s) == len(single) for s in shards)
    for step, labels in enumerate(single):
        parts = [s[step] for s in shards]
        assert torch.equal(torch.cat(parts), labels)
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_sharded_loader_leaves_out_a_last_batch_smaller_than_the_world_and_refuses_too_small_batches():
    data = make_images(5, seed=0)
    loader = BatchLoader(data, torch.arange(17), 8, shard=(2, 3))  # 8 + 8 + 1: the lone last image is left out
    assert len(loader) == 2 and [len(labels) for _, labels in loader] == [2, 2]  # 8 = 3 + 3 + 2
    with pytest.raises(UserError, match="too few to share among 3 processes"):
        BatchLoader(data, torch.arange(17), 2, shard=(0, 3))
    with pytest.raises(UserError, match="too few to share"):
        BatchLoader(data, torch.arange(2), 8, shard=(0, 3))


def test_without_torchrun_every_helper_leaves_a_single_process_run_unchanged():
    from util import distributed
    assert "WORLD_SIZE" not in os.environ or os.environ["WORLD_SIZE"] == "1"
    assert distributed.init_distributed(torch.device("cpu")) == torch.device("cpu")
    assert distributed.shard() == (0, 1) and distributed.is_main_process()
    counts = torch.tensor([3, 1, 4])
    assert distributed.all_reduce_sum(counts) is counts
    assert torch.equal(distributed.shard_indices(torch.arange(5)), torch.arange(5))
    assert distributed.mean_over_processes({"loss": 0.5}) == {"loss": 0.5}
