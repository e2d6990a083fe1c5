"""User mistakes end train_own.py with exit status 2 and one 'error:' line on stderr, never a traceback.

The three runs start together (each pays the torch import once) and are checked one per test.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backbone import build_model
from util.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def image_tree(root: Path, splits: dict) -> Path:
    for split, classes in splits.items():
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input")
    good = image_tree(tmp / "good", {"train": ["a", "b"], "test": ["a", "b"]})
    mismatched = image_tree(tmp / "mismatched", {"train": ["a", "b"], "test": ["a", "c"]})
    deeper = build_model("vit_face_tiny", "cosface", 2, depth=3)
    save_checkpoint(tmp / "depth3.pth", model=deeper.state_dict(),
                    model_args=dict(net="vit_face_tiny", head="cosface", num_classes=2, depth=3, image_size=16))
    cases = {
        "missing_folder": ["--data_root", str(tmp / "does_not_exist")],
        "wrong_depth": ["--data_root", str(good), "-r", str(tmp / "depth3.pth"), "--vit_depth", "2"],
        "class_mismatch": ["--data_root", str(mismatched)],
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = {name: subprocess.Popen(
        [sys.executable, "train_own.py", "-d", "imagefolder", "-n", "vit_face_tiny", "-e", "1",
         "--outdir", str(tmp / f"run_{name}"), "--log_level", "WARNING", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, extra in cases.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = (proc.returncode, out, err)
    return results, tmp


def one_error_line(result) -> str:
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_dataset_folder_names_the_expected_layout(runs):
    results, tmp = runs
    line = one_error_line(results["missing_folder"])
    assert str(tmp / "does_not_exist") in line
    assert "{train,test}/<class name>" in line


def test_checkpoint_of_another_depth_names_the_mismatched_keys(runs):
    line = one_error_line(runs[0]["wrong_depth"])
    assert "depth3.pth does not fit the model" in line
    assert "unexpected: backbone.blocks.2." in line


def test_train_and_test_with_different_class_folders(runs):
    line = one_error_line(runs[0]["class_mismatch"])
    assert "different class folders" in line
    assert "only in train: ['b']" in line and "only in test: ['c']" in line
