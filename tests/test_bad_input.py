"""User mistakes end an entry point with exit status 2 and one 'error:' line on stderr, never a traceback.

Parser errors take the same one-line form (config.OneLineParser). A refused call leaves the files it found
byte-identical. The runs go in parallel (each pays the torch import once) and are checked one per test.
"""
import contextlib
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from PIL import Image

from config import parse_args
from model import build_model
from util.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# Nearly all of a run is its imports (about 4 CPU seconds, 0.4 GB); more runs at once than this only cost memory.
PARALLEL_RUNS = 8


def image_tree(root: Path, splits: dict, files: dict = None, empty: tuple = ()) -> Path:
    """``root/<split>/<class>/`` with two 16x16 PNGs per class, plus ``files`` (relative path -> raw bytes) and
    the ``empty`` folders (relative paths)."""
    for split, classes in splits.items():
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    for relative, data in (files or {}).items():
        (root / relative).write_bytes(data)
    for relative in empty:
        (root / relative).mkdir(parents=True)
    return root


def truncated_jpeg() -> bytes:
    """The first half of a 64x64 noise JPEG: its header still parses, its pixel data ends early."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()[:len(buffer.getvalue()) // 2]


def tiny_checkpoint(path: Path, depth: int = 2, num_classes: int = 2) -> Path:
    model = build_model("vit_face_tiny", "cosface", num_classes, depth=depth)
    save_checkpoint(path, model=model.state_dict(), model_args=dict(net="vit_face_tiny", head="cosface",
                                                                    num_classes=num_classes, depth=depth,
                                                                    image_size=16))
    return path


def run_folder(folder: Path, files: dict) -> None:
    """Writes ``files`` (relative path -> text, or a Path to copy) into ``folder``: a run folder made by hand."""
    for relative, content in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content.read_bytes() if isinstance(content, Path) else content.encode())


def snapshot(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


class Runs(NamedTuple):
    results: dict  # case name -> (exit status, stdout, stderr)
    tmp: Path
    before: dict  # folder name -> snapshot before the runs


def saved_config(forget_argv: list, **changed) -> str:
    """The config.json a run started with ``forget_argv`` would hold, with ``changed`` flags (an earlier run's)."""
    with contextlib.chdir(ROOT):  # relative defaults such as --cache_dir resolve as in the subprocess
        args = parse_args("x", argv=forget_argv[1:])
    return json.dumps({**json.loads(json.dumps(vars(args), default=str)), **changed})


def write_bad_data(tmp: Path) -> Path:
    """The data folders and files of the cases under ``tmp``; returns the good checkpoint."""
    image_tree(tmp / "good", {"train": ["a", "b"], "test": ["a", "b"]})
    image_tree(tmp / "mismatched", {"train": ["a", "b"], "test": ["a", "c"]})
    two_classes = {"train": ["a", "b"], "test": ["a", "b"]}
    image_tree(tmp / "corrupt", two_classes, files={"train/b/2.jpg": np.random.default_rng(0).bytes(300)})
    image_tree(tmp / "truncated", two_classes, files={"test/a/2.jpg": truncated_jpeg()})
    image_tree(tmp / "empty_class", {"train": ["a", "b"], "test": ["a", "b", "c"]}, empty=("train/c",))
    tiny_checkpoint(tmp / "depth3.pth", depth=3)
    (tmp / "a_file").write_text("not a folder")
    (tmp / "random.pth").write_bytes(np.random.default_rng(1).bytes(500))
    (tmp / "malformed.yaml").write_text("lr: [0.1, 0.2\n")
    return tiny_checkpoint(tmp / "checkpoint.pth")


def bad_input_cases(tmp: Path) -> dict:
    """Writes the broken inputs under ``tmp`` and returns the command line of each case."""
    checkpoint = write_bad_data(tmp)
    good, mismatched, corrupt = tmp / "good", tmp / "mismatched", tmp / "corrupt"
    truncated, empty_class = tmp / "truncated", tmp / "empty_class"

    evaluate = ["train_own.py", "-d", "imagefolder", "--data_root", str(good), "-n", "vit_face_tiny", "--log_level",
                "WARNING"]

    def pretrain(name, *extra):  # a later --outdir in extra wins
        return [*evaluate, "-e", "1", "--outdir", str(tmp / f"run_{name}"), *extra]

    # Forgetting on the two classes: one task forgets order[1] and keeps order[0].
    forget = ["-d", "imagefolder", "--data_root", str(good), "-r", str(checkpoint), "-n", "vit_face_tiny", "-e", "1",
              "--num_of_first_cls", "1", "--per_forget_cls", "1", "--log_level", "WARNING"]
    forget_into = {name: ["train_own_forget_cl.py", *forget, "--num_tasks", "1", "--outdir", str(tmp / name)]
                   for name in ("corrupt_results", "no_method_state", "finished", "other_seed", "other_method")}
    run_folder(tmp / "corrupt_results", {"results.json": "{not json"})
    run_folder(tmp / "no_method_state", {"results.json": '{"tasks": [{"task": 0}]}',
                                         "task-level/Backbone_task_0.pth": checkpoint})
    for name, changed in (("finished", {}), ("other_seed", {"seed": 7}), ("other_method", {"method": "ewc"})):
        run_folder(tmp / name, {"results.json": '{"tasks": []}',
                                "config.json": saved_config(forget_into[name], **changed)})
    run_folder(tmp / "reevaluated", {"results.json": "[1, 2"})
    run_folder(tmp / "run_full_outdir", {"best.pth": checkpoint, "config.json": '{"epochs": 3}'})
    run_folder(tmp / "evaluated", {"model.pth": checkpoint})
    single_step = ["train_own_forget.py", *forget]  # no --num_tasks: the entry point fixes it to 1
    cases = {
        "missing_folder": pretrain("missing_folder", "--data_root", str(tmp / "does_not_exist")),
        "wrong_depth": pretrain("wrong_depth", "-r", str(tmp / "depth3.pth"), "--vit_depth", "2"),
        "class_mismatch": pretrain("class_mismatch", "--data_root", str(mismatched)),
        "corrupt_jpeg": pretrain("corrupt_jpeg", "--data_root", str(corrupt)),
        "truncated_jpeg": pretrain("truncated_jpeg", "--data_root", str(truncated)),
        "empty_class": pretrain("empty_class", "--data_root", str(empty_class)),
        "outdir_under_file": pretrain("outdir", "--outdir", str(tmp / "a_file" / "run")),
        "cache_dir_under_file": pretrain("cache", "-d", "synthetic", "--cache_dir", str(tmp / "a_file" / "cache")),
        "zero_epochs": pretrain("zero_epochs", "-e", "0"),
        "zero_batch": pretrain("zero_batch", "-b", "0"),
        "zero_eval_every": ["train_own_forget_cl.py", *forget, "--eval_every", "0"],
        "negative_lr": pretrain("negative_lr", "--lr", "-0.1"),
        "unknown_opt": pretrain("unknown_opt", "--opt", "adamz"),
        "image_size_off_patch": pretrain("image_size", "--image_size", "18"),
        "missing_config": pretrain("missing_config", "--config", str(tmp / "none.yaml")),
        "malformed_config": pretrain("malformed_config", "--config", str(tmp / "malformed.yaml")),
        "beta_list_longer": ["train_own_forget_cl.py", *forget, "--num_tasks", "1", "--cl_beta_list", "0.1", "0.2"],
        "single_step_beta_list": [*single_step, "--cl_beta_list", "0.1", "0.2"],
        # One value passes the single-step check (one task, not the default --num_tasks 9); the folder then fails.
        "single_step_outdir_under_file": [*single_step, "--cl_beta_list", "0.1", "--outdir",
                                          str(tmp / "a_file" / "single")],
        "random_bytes_checkpoint": pretrain("random_bytes", "-r", str(tmp / "random.pth")),
        "resume_corrupt_results": [*forget_into["corrupt_results"], "--resume_run"],
        "resume_without_method_state": [*forget_into["no_method_state"], "--resume_run"],
        "reevaluate_corrupt_results": ["test_forget_cl.py", "--run_dir", str(tmp / "reevaluated")],
        "pretrain_into_full_outdir": pretrain("full_outdir"),
        "eval_only": [*evaluate, "--eval_only", "-r", str(tmp / "evaluated" / "model.pth")],
        "forget_into_finished_run": forget_into["finished"],
        "resume_other_seed": [*forget_into["other_seed"], "--resume_run"],
        "resume_other_method": [*forget_into["other_method"], "--resume_run"],
    }
    return cases


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input")
    cases = bad_input_cases(tmp)
    before = {name: snapshot(tmp / name) for name in ("run_full_outdir", "finished", "other_seed", "other_method")}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        done = {name: pool.submit(subprocess.run, [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=300) for name, argv in cases.items()}
    results = {name: (f.result().returncode, f.result().stdout, f.result().stderr) for name, f in done.items()}
    return Runs(results, tmp, before)


def one_error_line(result) -> str:
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_dataset_folder_names_the_expected_layout(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["missing_folder"])
    assert str(tmp / "does_not_exist") in line
    assert "{train,test}/<class name>" in line


def test_checkpoint_of_another_depth_names_the_mismatched_keys(runs):
    line = one_error_line(runs.results["wrong_depth"])
    assert "depth3.pth does not fit the model" in line
    assert "unexpected: backbone.blocks.2." in line


def test_train_and_test_with_different_class_folders(runs):
    line = one_error_line(runs.results["class_mismatch"])
    assert "different class folders" in line
    assert "only in train: ['b']" in line and "only in test: ['c']" in line


def test_random_bytes_jpeg_names_the_file(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["corrupt_jpeg"])
    assert f"cannot decode image {tmp / 'corrupt' / 'train' / 'b' / '2.jpg'} (not an image format" in line
    assert line.endswith("remove or replace it")


def test_truncated_jpeg_names_the_file(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["truncated_jpeg"])
    assert f"cannot decode image {tmp / 'truncated' / 'test' / 'a' / '2.jpg'} (image file is truncated" in line


def test_empty_class_folder_names_the_folder(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["empty_class"])
    assert f"1 class folder(s) in {tmp / 'empty_class' / 'train'} hold no images (first: ['c'])" in line
    assert "every class needs images in both train and test" in line


def test_outdir_under_a_file_names_the_flag(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["outdir_under_file"])
    assert f"--outdir {tmp / 'a_file' / 'run'} cannot be used as a folder" in line


def test_cache_dir_under_a_file_names_the_flag(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["cache_dir_under_file"])
    assert f"--cache_dir {tmp / 'a_file' / 'cache'} cannot hold the synthetic faces" in line
    assert "pass a writable folder as --cache_dir" in line


@pytest.mark.parametrize("case, message", [
    ("zero_epochs", "argument -e/--epochs: must be at least 1, got 0"),
    ("zero_batch", "argument -b/--batch_size: must be at least 1, got 0"),
    ("zero_eval_every", "argument --eval_every: must be at least 1, got 0"),
    ("negative_lr", "argument --lr: must be at least 0.0, got -0.1"),
    ("unknown_opt", "argument --opt: unknown timm optimizer 'adamz'"),
])
def test_out_of_range_flag_is_one_parser_error_line(runs, case, message):
    assert message in one_error_line(runs.results[case])


def test_image_size_off_the_patch_grid_names_a_valid_size(runs):
    line = one_error_line(runs.results["image_size_off_patch"])
    assert "--image_size 18 is not a multiple of the model's patch size 4; pass a multiple such as 16" in line


def test_missing_and_malformed_config_files(runs):
    results, tmp = runs.results, runs.tmp
    assert f"cannot read --config {tmp / 'none.yaml'} (No such file" in one_error_line(results["missing_config"])
    line = one_error_line(results["malformed_config"])
    assert f"--config {tmp / 'malformed.yaml'} is not valid YAML" in line and "at line 2" in line


def test_per_task_list_longer_than_the_tasks(runs):
    assert "--cl_beta_list has 2 values for 1 tasks" in one_error_line(runs.results["beta_list_longer"])


def test_single_step_checks_the_lists_against_one_task(runs):
    results, tmp = runs.results, runs.tmp
    assert "--cl_beta_list has 2 values for 1 tasks" in one_error_line(results["single_step_beta_list"])
    line = one_error_line(results["single_step_outdir_under_file"])
    assert f"--outdir {tmp / 'a_file' / 'single'} cannot be used as a folder" in line


def test_random_bytes_checkpoint_is_one_complete_line(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["random_bytes_checkpoint"])
    assert f"cannot read checkpoint {tmp / 'random.pth'} (UnpicklingError)" in line
    assert line.endswith("a plain state dict") and "weights_only" not in line


def test_resume_from_a_corrupt_or_incomplete_run_folder(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["resume_corrupt_results"])
    assert f"cannot read {tmp / 'corrupt_results' / 'results.json'} (JSONDecodeError)" in line
    line = one_error_line(results["resume_without_method_state"])
    missing = tmp / "no_method_state" / "task-level" / "method_task_0.pth"
    assert f"lists task 0 as done but {missing} is missing" in line
    # Both are refused before the run starts: nothing new is written into the folders.
    for folder in ("corrupt_results", "no_method_state"):
        assert not (tmp / folder / "run.log").exists() and not (tmp / folder / "tensorboard").exists()


def test_reevaluating_a_corrupt_results_file(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["reevaluate_corrupt_results"])
    assert f"cannot read {tmp / 'reevaluated' / 'results.json'} (JSONDecodeError)" in line


def test_pretraining_into_a_folder_with_a_model_needs_overwrite(runs):
    line = one_error_line(runs.results["pretrain_into_full_outdir"])
    assert "is not empty (a pre-trained model may be there); pass --overwrite" in line
    assert snapshot(runs.tmp / "run_full_outdir") == runs.before["run_full_outdir"]


def test_eval_only_writes_next_to_the_checkpoint_and_no_config(runs):
    results, tmp = runs.results, runs.tmp
    code, out, err = results["eval_only"]
    assert code == 0, err
    assert sorted(p.name for p in (tmp / "evaluated").iterdir()) == ["model.pth", "model_test_accuracy.json"]
    assert str(tmp / "evaluated" / "model_test_accuracy.json") in out


def test_forgetting_into_a_finished_run_needs_resume_and_changes_nothing(runs):
    results, tmp = runs.results, runs.tmp
    line = one_error_line(results["forget_into_finished_run"])
    assert f"{tmp / 'finished' / 'results.json'} exists: pass --resume_run" in line
    assert snapshot(tmp / "finished") == runs.before["finished"]


@pytest.mark.parametrize("case, shown", [("resume_other_seed", "--seed 7 -> 1337"),
                                         ("resume_other_method", "--method 'ewc' -> 'gs_lora'")])
def test_resume_with_other_protocol_flags_names_them(runs, case, shown):
    folder = case.removeprefix("resume_")
    line = one_error_line(runs.results[case])
    assert f"--resume_run with flags that differ from {runs.tmp / folder / 'config.json'}: {shown}; " in line
    assert snapshot(runs.tmp / folder) == runs.before[folder]
