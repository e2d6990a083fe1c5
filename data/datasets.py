"""One entry point for the data of a run: decoded train/test images and the train/validation split.

Modes: ``casia100`` (the papers' 100 CASIA-WebFace identities), ``imagefolder`` (any ``train/`` + ``test/`` tree
under ``--data_root``) and ``synthetic`` (built-in synthetic faces, generated once into ``--cache_dir``).
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from data.folders import ImageTensors, class_folders, load_image_folder
from data.subsets import train_val_split
from util.errors import UserError

DATA_MODES = ("casia100", "imagefolder", "synthetic")


@dataclass
class RunData:
    """The decoded splits; ``train_idx`` and ``val_idx`` partition the training images."""

    root: Path
    train: ImageTensors
    test: ImageTensors
    train_idx: torch.Tensor
    val_idx: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)


def resolve_root(data_mode: str, data_root: str, cache_dir: str, seed: int) -> Path:
    """The dataset folder of a mode; the synthetic faces are generated on first use (a --cache_dir that cannot hold
    them is a UserError)."""
    if data_mode == "synthetic":
        from data.synthetic_faces import ensure_synthetic_faces
        try:
            return ensure_synthetic_faces(cache_dir, seed=seed)
        except OSError as err:
            raise UserError(f"--cache_dir {cache_dir} cannot hold the synthetic faces ({err.strerror or err}); "
                            f"pass a writable folder as --cache_dir") from None
    return Path(data_root)


def build_data(root: Path, image_size: int, val_ratio: float = 0.1, seed: int = 1337, workers: int = 4) -> RunData:
    """Decodes both splits at ``image_size`` and carves a per-class validation split from the training images.

    ``workers`` threads decode the images (PIL releases the GIL while decoding).
    """
    class_folders(root)
    train = load_image_folder(root, "train", image_size, workers)
    test = load_image_folder(root, "test", image_size, workers)
    train_idx, val_idx = train_val_split(train.targets, val_ratio, seed)
    return RunData(root, train, test, train_idx, val_idx)
