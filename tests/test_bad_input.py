"""User mistakes end train_own.py with exit status 2 and one 'error:' line on stderr, never a traceback.

The runs start together (each pays the torch import once) and are checked one per test.
"""
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import build_model
from util.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input")
    good = image_tree(tmp / "good", {"train": ["a", "b"], "test": ["a", "b"]})
    mismatched = image_tree(tmp / "mismatched", {"train": ["a", "b"], "test": ["a", "c"]})
    two_classes = {"train": ["a", "b"], "test": ["a", "b"]}
    corrupt = image_tree(tmp / "corrupt", two_classes, files={"train/b/2.jpg": np.random.default_rng(0).bytes(300)})
    truncated = image_tree(tmp / "truncated", two_classes, files={"test/a/2.jpg": truncated_jpeg()})
    empty_class = image_tree(tmp / "empty_class", {"train": ["a", "b"], "test": ["a", "b", "c"]}, empty=("train/c",))
    deeper = build_model("vit_face_tiny", "cosface", 2, depth=3)
    save_checkpoint(tmp / "depth3.pth", model=deeper.state_dict(),
                    model_args=dict(net="vit_face_tiny", head="cosface", num_classes=2, depth=3, image_size=16))
    cases = {
        "missing_folder": ["--data_root", str(tmp / "does_not_exist")],
        "wrong_depth": ["--data_root", str(good), "-r", str(tmp / "depth3.pth"), "--vit_depth", "2"],
        "class_mismatch": ["--data_root", str(mismatched)],
        "corrupt_jpeg": ["--data_root", str(corrupt)],
        "truncated_jpeg": ["--data_root", str(truncated)],
        "empty_class": ["--data_root", str(empty_class)],
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


def test_random_bytes_jpeg_names_the_file(runs):
    results, tmp = runs
    line = one_error_line(results["corrupt_jpeg"])
    assert f"cannot decode image {tmp / 'corrupt' / 'train' / 'b' / '2.jpg'} (not an image format" in line
    assert line.endswith("remove or replace it")


def test_truncated_jpeg_names_the_file(runs):
    results, tmp = runs
    line = one_error_line(results["truncated_jpeg"])
    assert f"cannot decode image {tmp / 'truncated' / 'test' / 'a' / '2.jpg'} (image file is truncated" in line


def test_empty_class_folder_names_the_folder(runs):
    results, tmp = runs
    line = one_error_line(results["empty_class"])
    assert f"1 class folder(s) in {tmp / 'empty_class' / 'train'} hold no images (first: ['c'])" in line
    assert "every class needs images in both train and test" in line
