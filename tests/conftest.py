"""Shared fixtures: a tiny in-memory dataset, a tiny pre-trained model and a two-task forgetting runner.

The tiny dataset has 8 classes of 16 px images: each class is a colour pattern plus noise, so a 2-block ViT
learns it in seconds while staying short of saturation (a saturated CosFace model has vanishing forget gradients).
"""
import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from data.datasets import RunData  # noqa: E402
from data.folders import ImageTensors  # noqa: E402
from data.subsets import train_val_split  # noqa: E402
from data.task_plan import plan_tasks  # noqa: E402
from engine.forgetting import run_forgetting  # noqa: E402
from engine.method import METHODS  # noqa: E402
from engine.optim import OptimConfig  # noqa: E402
from engine.pretraining import pretrain  # noqa: E402
from engine.settings import RunSettings  # noqa: E402
from model import build_model  # noqa: E402
from util.run_log import RunLog  # noqa: E402

NUM_CLASSES = 8
IMAGE_SIZE = 16


def make_images(num_per_class: int, seed: int, noise: float = 0.35) -> ImageTensors:
    """Class c: a fixed random 4x4 colour pattern upsampled to 16 px, plus Gaussian noise."""
    patterns = torch.rand(NUM_CLASSES, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    patterns = torch.nn.functional.interpolate(patterns, size=IMAGE_SIZE, mode="nearest")
    gen = torch.Generator().manual_seed(seed)
    targets = torch.arange(NUM_CLASSES).repeat_interleave(num_per_class)
    images = patterns[targets] + noise * torch.randn(len(targets), 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageTensors(images, targets, [f"c{i}" for i in range(NUM_CLASSES)])


@pytest.fixture(scope="session")
def tiny_data() -> RunData:
    train, test = make_images(40, seed=1), make_images(12, seed=2)
    train_idx, val_idx = train_val_split(train.targets, 0.2, seed=0)
    return RunData(Path("tiny"), train, test, train_idx, val_idx)


def tiny_settings(outdir: Path, epochs: int = 4, lr: float = 1e-2, selection: str = "val", **kw) -> RunSettings:
    return RunSettings(outdir=Path(outdir), batch_size=16, test_batch_size=64, device=torch.device("cpu"), amp=False,
                       seed=0, optim=OptimConfig(lr=lr, epochs=epochs, warmup_epochs=0, min_lr=1e-5),
                       data_ratio=1.0, selection=selection, eval_every=5,
                       model_args=dict(net="vit_face_tiny", head="cosface", num_classes=NUM_CLASSES), **kw)


@pytest.fixture(scope="session")
def pretrained_state(tiny_data, tmp_path_factory):
    """State dict of a tiny Face Transformer pre-trained on all 8 classes (good, not saturated)."""
    torch.manual_seed(0)
    model = build_model("vit_face_tiny", "cosface", NUM_CLASSES)
    outdir = tmp_path_factory.mktemp("pretrain")
    settings = tiny_settings(outdir, epochs=12, lr=3e-3)
    report = pretrain(model, tiny_data, settings, RunLog(None), outdir / "best.pth")
    assert report["test_acc_plain"] > 60, report["test_acc_plain"]
    return copy.deepcopy(model.state_dict())


@pytest.fixture
def pretrained_model(pretrained_state):
    model = build_model("vit_face_tiny", "cosface", NUM_CLASSES)
    model.load_state_dict(pretrained_state)
    return model


def tiny_tasks(num_tasks: int = 2):
    """Classes 0-7 in order; task 0 forgets 6 and 7, task 1 forgets 4 and 5."""
    return plan_tasks(list(range(NUM_CLASSES)), 6, 2, num_tasks)


@pytest.fixture
def run_tiny(tiny_data, pretrained_model, tmp_path):
    """Runs a registered method (built with the given keywords) through tiny tasks; returns its results."""

    def run(method_name: str, num_tasks: int = 2, settings_kw=None, **method_kw):
        method = METHODS.get(method_name)(pretrained_model, **method_kw)
        outdir = tmp_path / f"{method_name}-{len(list(tmp_path.iterdir()))}"  # a fresh folder per call
        settings = tiny_settings(outdir, **(settings_kw or {}))
        return run_forgetting(method, tiny_data, tiny_tasks(num_tasks), settings, RunLog(None))

    return run


def write_image_folder(root: Path, num_classes: int, train_per_class: int, test_per_class: int) -> None:
    """An ImageFolder tree of 16 px colour blobs with noise: class_<c>/<k>.png under train/ and test/."""
    rng = np.random.default_rng(0)
    colours = rng.random((num_classes, 3))
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for c, colour in enumerate(colours):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = np.clip(colour + 0.3 * rng.standard_normal((16, 16, 3)), 0, 1)
                Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"{k}.png")


def entry_point(script: str, *args: str) -> list[str]:
    """The command line of one of the project's entry points, by absolute path (valid from any directory)."""
    return [sys.executable, str(ROOT / script), *args]


def child_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run_entry_point(script: str, *args: str, cwd: Path = ROOT, ok: bool = True) -> subprocess.CompletedProcess:
    """Runs an entry point on one thread from ``cwd``; with ``ok`` it must exit 0."""
    done = subprocess.run(entry_point(script, *args), cwd=cwd, env=child_env(), capture_output=True, text=True)
    if ok:
        assert done.returncode == 0, done.stderr[-2000:]
    return done
