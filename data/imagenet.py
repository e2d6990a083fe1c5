"""ImageNet100 (the papers' Table 4): wnid folders, their rows of a 1000-way head (ImageNet's order: sorted wnids),
and the transform, Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize, for training and testing (Sec. 3.6)."""
import functools
from pathlib import Path

from torchvision import transforms

from data.folders import StreamedImages, stream_image_folder
from util.errors import UserError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=1)
def imagenet_wnids() -> list[str]:
    """ImageNet-1k's wnids in class-index order (timm's copy of the list, read from the installed package)."""
    from timm.data import ImageNetInfo
    return list(ImageNetInfo().label_names())


def imagenet_rows(wnids: list[str], where: str = "the dataset") -> list[int]:
    """The ImageNet-1k class index (row of a 1000-way head) of each wnid; a name that is no wnid is a UserError."""
    index = {wnid: row for row, wnid in enumerate(imagenet_wnids())}
    unknown = [w for w in wnids if w not in index]
    if unknown:
        raise UserError(f"{len(unknown)} class folder(s) of {where} are not ImageNet wnids (first: {unknown[:5]}); "
                        f"ImageNet100 folders must be named by wnid, such as n01440764")
    return [index[w] for w in wnids]


def imagenet_transform(image_size: int = 224) -> transforms.Compose:
    """Resize the short side to 256/224 of ``image_size``, center-crop ``image_size``, ImageNet-normalise."""
    return transforms.Compose([transforms.Resize(round(image_size * 256 / 224)), transforms.CenterCrop(image_size),
                               transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def stream_imagenet_split(root: Path, split: str, image_size: int, workers: int) -> StreamedImages:
    """``root/split/<wnid>/*`` streamed with the ImageNet transform; every folder must be an ImageNet wnid."""
    images = stream_image_folder(root, split, imagenet_transform(image_size), workers)
    imagenet_rows(images.classes, str(Path(root) / split))
    return images
