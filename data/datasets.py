"""The decoded data of a run and its train/validation split. Modes: ``casia100`` (the papers' 100 CASIA-WebFace ids),
``imagefolder`` (``train/`` + ``test/``), ``synthetic`` (into ``--cache_dir``) in memory; ``imagenet100`` streamed."""
import dataclasses
from pathlib import Path
from typing import Iterable

import torch

from data.folders import Images, class_folders, load_image_folder
from data.imagenet import imagenet_rows, stream_imagenet_split
from data.subsets import train_val_split
from util.errors import UserError

DATA_MODES = ("casia100", "imagefolder", "synthetic", "imagenet100")
STREAMED_MODES = ("imagenet100",)


@dataclasses.dataclass
class RunData:
    """The decoded splits; ``train_idx`` and ``val_idx`` partition the training images."""

    root: Path
    train: Images
    test: Images
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    outside: object | None = None  # engine.evaluation.OutsideClasses: ImageNet-900 for the Acc_m evaluation

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)


def resolve_root(data_mode: str, data_root: str, cache_dir: str, seed: int) -> Path:
    """The dataset folder of a mode; synthetic faces are generated on first use (an unusable --cache_dir: UserError)."""
    if data_mode == "synthetic":
        from data.synthetic_faces import ensure_synthetic_faces
        try:
            return ensure_synthetic_faces(cache_dir, seed=seed)
        except OSError as err:
            raise UserError(f"--cache_dir {cache_dir} cannot hold the synthetic faces ({err.strerror or err}); "
                            f"pass a writable folder as --cache_dir") from None
    return Path(data_root)


def dataset_classes(data_mode: str, root: Path) -> list[str]:
    """The class folder names, checked in both splits before anything is decoded (ImageNet100: wnids)."""
    classes = class_folders(root)
    if data_mode in STREAMED_MODES:
        imagenet_rows(classes, str(root))
    return classes


def build_data(root: Path, image_size: int, val_ratio: float = 0.1, seed: int = 1337, workers: int = 4,
               data_mode: str = "imagefolder") -> RunData:
    """Both splits at ``image_size`` and a per-class validation split; streamed modes decode each pass, others now."""
    dataset_classes(data_mode, root)
    load = stream_imagenet_split if data_mode in STREAMED_MODES else load_image_folder
    train, test = (load(root, split, image_size, workers) for split in ("train", "test"))
    return RunData(root, train, test, *train_val_split(train.targets, val_ratio, seed))


def without_classes(data: RunData, classes: Iterable[int]) -> RunData:
    """``data`` without training or validation images of ``classes`` (the test split stays whole, to measure them)."""
    dropped = torch.tensor(sorted(set(classes)), dtype=torch.long)
    train_idx, val_idx = (idx[~torch.isin(data.train.targets[idx], dropped)] for idx in (data.train_idx, data.val_idx))
    if len(train_idx) == 0:
        raise UserError("leaving those classes out leaves no training image")
    return dataclasses.replace(data, train_idx=train_idx, val_idx=val_idx)
