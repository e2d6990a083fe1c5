"""Image folders, decoded once into memory (face data sets; CASIA-100 at 112 px is 1.3 GB) or streamed by worker
processes (ImageNet100, 19 GB) behind one interface (``targets``, ``classes``, ``batches``), and a batch loader."""
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from data.subsets import seeded_generator
from util.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# PIL modes of 16-bit samples (a 16-bit grayscale PNG opens as one of these). convert("RGB") clips them to 255.
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


@dataclass
class ImageTensors:
    """Decoded images (N, 3, S, S) uint8, labels (N,) int64 and the class folder names (label = position)."""

    images: torch.Tensor
    targets: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.targets)

    def batches(self, chunks: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images float in [0, 1], labels) for each chunk of indices, in order."""
        yield from ((self.images[idx].float().div_(255), self.targets[idx]) for idx in chunks)


@dataclass
class StreamedImages:
    """Image files decoded each pass by ``workers`` processes (0: this one) via ``transform``; as ``ImageTensors``."""

    files: list[Path]
    targets: torch.Tensor
    classes: list[str]
    transform: Callable
    workers: int = 4

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(transformed image, label) of one file; runs inside the DataLoader's worker processes."""
        return self.transform(_open_rgb(self.files[i])), self.targets[i]

    def batches(self, chunks: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) for each chunk of indices, in order, decoded by a DataLoader's worker processes."""
        loader = torch.utils.data.DataLoader(self, batch_sampler=[idx.tolist() for idx in chunks],
                                             num_workers=self.workers, pin_memory=torch.cuda.is_available())
        try:
            yield from loader
        except UserError as err:
            # A worker's error arrives wrapped with its traceback; the user needs its own last line only.
            raise UserError(str(err).strip().splitlines()[-1].split("UserError: ", 1)[-1]) from None


Images = ImageTensors | StreamedImages


def _layout(root: Path) -> str:
    return f"expected {Path(root)}/{{train,test}}/<class name>/<image files>"


def _resolvable(path: Path) -> Path:
    """``path``, unless a symlink loop or dangling link (UserError): listing would silently drop it and its class."""
    if path.is_symlink() and not path.exists():
        raise UserError(f"{path} is a symlink loop or points to nothing: fix or remove the link")
    return path


def _list_images(root: Path, split: str) -> tuple[list[str], list[Path], torch.Tensor]:
    """Class names, files and labels of ``root/split``, undecoded; an empty class can neither be learned nor tested."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise UserError(f"dataset folder {split_dir} not found; {_layout(root)}")
    # Sorted by name: a class folder's position is its label, and the sample order is the same on every machine.
    # Names starting with '.' are tool leftovers (.ipynb_checkpoints, macOS ._x.jpg), not data.
    class_dirs = sorted((d for d in map(_resolvable, split_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")),
                        key=lambda d: d.name)
    files = [sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
             for d in class_dirs]
    if not any(files):
        raise UserError(f"no images in {split_dir}; {_layout(root)}")
    empty = [d.name for d, found in zip(class_dirs, files) if not found]
    if empty:
        raise UserError(f"{len(empty)} class folder(s) in {split_dir} hold no images (first: {empty[:5]}); "
                        "every class needs images in both train and test")
    targets = torch.tensor([label for label, found in enumerate(files) for _ in found], dtype=torch.int64)
    return [d.name for d in class_dirs], [f for found in files for f in found], targets


def _open_rgb(path: Path) -> Image.Image:
    """The decoded RGB image of one file; a file that cannot be decoded stops the run (skipping would silently change
    the data), named in the message because PIL's own error in a worker would not say which file."""
    try:
        with Image.open(path) as img:
            img.load()  # PIL reads lazily: a truncated JPEG opens fine and only fails on the pixel data
            return _to_rgb(img, path)
    except (OSError, SyntaxError, ValueError) as err:
        # PIL's unidentified-format message repeats the path; the short reason keeps the line readable.
        reason = "not an image format PIL reads" if isinstance(err, UnidentifiedImageError) else err
        raise UserError(f"cannot decode image {path} ({reason}): remove or replace it") from err


def _to_rgb(img: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB; 16-bit samples become round(v / 257) as an 8-bit export holds; float (no fixed range) is refused."""
    if img.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise UserError(f"image {path} holds {img.mode} values outside 0-65535; convert it to 8 or 16 bits")
        return Image.fromarray(((values + 128) // 257).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        raise UserError(f"image {path} has PIL mode F (32-bit float, no fixed range); convert it to 8 or 16 bits")
    return img.convert("RGB")


def _decode(path: Path, size: int) -> np.ndarray:
    """The RGB pixels of one image file, resized to ``size`` x ``size``."""
    img = _open_rgb(path)
    return np.asarray(img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR))


def load_image_folder(root: Path, split: str, image_size: int, workers: int = 4) -> ImageTensors:
    """Decodes ``root/split/<class>/<image>`` into memory at ``image_size`` x ``image_size``; bad input: UserError."""
    classes, files, targets = _list_images(root, split)
    log.info("decoding %d images of %s at %d px", len(files), Path(root) / split, image_size)
    # On a decode error, map's iterator cancels the images not yet started, so the error shows without delay.
    with ThreadPoolExecutor(max(1, workers)) as pool:
        arrays = list(pool.map(lambda f: _decode(f, image_size), files))
    return ImageTensors(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), targets, classes)


def stream_image_folder(root: Path, split: str, transform: Callable, workers: int = 4) -> StreamedImages:
    """Lists ``root/split/<class>/<image>`` for streaming (nothing is decoded yet); errors as ``load_image_folder``."""
    classes, files, targets = _list_images(root, split)
    log.info("streaming %d images of %s with %d worker(s)", len(files), Path(root) / split, workers)
    return StreamedImages(files, targets, classes, transform, workers)


def class_folders(root: Path) -> list[str]:
    """The class folders of ``root/train``, checked against ``root/test`` (labels are positions) before any decoding."""
    train, test = (_list_images(root, split)[0] for split in ("train", "test"))
    if train != test:
        raise UserError(f"train and test under {root} have different class folders (only in train: "
                        f"{sorted(set(train) - set(test))[:5]}, only in test: {sorted(set(test) - set(train))[:5]})")
    return train


class BatchLoader:
    """(images, labels) batches over ``indices``, shuffled by a generator seeded from (seed, tag, pass): new each pass.
    With ``shard`` = (rank, world size) each torchrun process keeps its part of each global batch of >= world images."""

    def __init__(self, data: Images, indices: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 tag: str = "", drop_last: bool = False, shard: tuple[int, int] = (0, 1)):
        if len(indices) == 0:
            raise UserError(f"no training images for '{tag}': check the class split and subset flags")
        if shard[1] > min(batch_size, len(indices)):
            raise UserError(f"'{tag}' has batches of {min(batch_size, len(indices))} image(s), too few to share "
                            f"among {shard[1]} processes: raise --batch_size or the subset, or start fewer processes")
        self.data, self.indices, self.batch_size, self.shuffle = data, indices, batch_size, shuffle
        self.seed, self.tag, self.drop_last, self.shard = seed, tag, drop_last, shard
        self.passes = 0

    def __len__(self) -> int:
        full, rest = divmod(len(self.indices), self.batch_size)
        return full + (0 if self.drop_last or rest < max(1, self.shard[1]) else 1)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=seeded_generator(self.seed, self.tag, self.passes))]
        self.passes += 1
        rank, world = self.shard
        yield from self.data.batches([order[start:start + self.batch_size].tensor_split(world)[rank]
                                      for start in range(0, len(self) * self.batch_size, self.batch_size)])


def cycle(loader: BatchLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches, reshuffled at every pass (pairs a short forget loader with a long remain loader)."""
    while True:
        yield from loader


def subset_indices(data: Images, classes: list[int], pool: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (within ``pool``, default all) of the samples whose label is in ``classes``."""
    pool = torch.arange(len(data)) if pool is None else pool
    wanted = torch.zeros(len(data.classes), dtype=torch.bool)
    wanted[list(classes)] = True
    return pool[wanted[data.targets[pool]]]
