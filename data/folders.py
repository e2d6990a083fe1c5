"""Image folders decoded once into memory, and a batch loader over index sets.

Face pipelines use ``ToTensor`` only (no augmentation), so each image can be decoded and resized once and kept as
uint8: an epoch then costs no JPEG decoding, and every subset (task split, data ratio, few-shot, validation) is just
a tensor of indices into one dataset. CASIA-100 at 112 px takes 1.3 GB this way.
"""
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from data.subsets import seeded_generator
from util.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class ImageTensors:
    """Decoded images (N, 3, S, S) uint8, labels (N,) int64 and the class folder names (label = position)."""

    images: torch.Tensor
    targets: torch.Tensor
    classes: List[str]

    def __len__(self) -> int:
        return len(self.targets)


def _list_images(split_dir: Path) -> Tuple[List[str], List[Tuple[Path, int]]]:
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    samples = [(f, label) for label, name in enumerate(classes)
               for f in sorted((split_dir / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return classes, samples


def _decode(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        return np.asarray(img)


def load_image_folder(root: Path, split: str, image_size: int, workers: int = 4) -> ImageTensors:
    """Decodes ``root/split/<class>/<image>`` into memory at ``image_size`` x ``image_size``.

    Raises UserError naming the expected layout when the folder is missing or holds no images.
    """
    split_dir = Path(root) / split
    layout = f"expected {Path(root)}/{{train,test}}/<class name>/<image files>"
    if not split_dir.is_dir():
        raise UserError(f"dataset folder {split_dir} not found; {layout}")
    classes, samples = _list_images(split_dir)
    if not samples:
        raise UserError(f"no images in {split_dir}; {layout}")
    log.info("decoding %d images of %s at %d px", len(samples), split_dir, image_size)
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(lambda s: _decode(s[0], image_size), samples))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    targets = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return ImageTensors(images, targets, classes)


def class_folders(root: Path) -> List[str]:
    """The class folder names of ``root/train``, checked against ``root/test`` before anything is decoded.

    Labels are folder positions, so both splits must hold the same class folders.
    """
    root = Path(root)
    layout = f"expected {root}/{{train,test}}/<class name>/<image files>"
    names = {}
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise UserError(f"dataset folder {root / split} not found; {layout}")
        names[split] = sorted(d.name for d in (root / split).iterdir() if d.is_dir())
    if names["train"] != names["test"]:
        only_train = sorted(set(names["train"]) - set(names["test"]))[:5]
        only_test = sorted(set(names["test"]) - set(names["train"]))[:5]
        raise UserError(f"train and test under {root} have different class folders "
                        f"(only in train: {only_train}, only in test: {only_test})")
    return names["train"]


class BatchLoader:
    """Iterates (images float in [0, 1], labels) batches over ``indices`` of an ``ImageTensors``.

    Shuffling uses a generator seeded from (seed, tag) and the pass number, so runs are reproducible and each
    pass is a new permutation.
    """

    def __init__(self, data: ImageTensors, indices: torch.Tensor, batch_size: int, shuffle: bool = False,
                 seed: int = 0, tag: str = "", drop_last: bool = False):
        if len(indices) == 0:
            raise UserError(f"no training images for '{tag}': check the class split and subset flags")
        self.data = data
        self.indices = indices
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.tag = tag
        self.drop_last = drop_last
        self.passes = 0

    def __len__(self) -> int:
        full, rest = divmod(len(self.indices), self.batch_size)
        return full + (0 if self.drop_last or not rest else 1)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=seeded_generator(self.seed, self.tag, self.passes))]
        self.passes += 1
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.data.images[idx].float().div_(255), self.data.targets[idx]


def cycle(loader: BatchLoader) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches, reshuffled at every pass (pairs a short forget loader with a long remain loader)."""
    while True:
        yield from loader


def subset_indices(data: ImageTensors, classes: List[int], pool: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Indices (within ``pool``, default all) of the samples whose label is in ``classes``."""
    pool = torch.arange(len(data)) if pool is None else pool
    wanted = torch.zeros(len(data.classes), dtype=torch.bool)
    wanted[list(classes)] = True
    return pool[wanted[data.targets[pool]]]
