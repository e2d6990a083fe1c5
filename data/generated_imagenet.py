"""A generated stand-in for ImageNet100 and the ViT-B/16 weight file, for tests and the scripts' smoke mode.

Small JPEG trees with real ImageNet wnids as folders (wnid checks, head surgery and missing-class evaluation run as on
real data) and a random torchvision ViT with 1000 classes. Not imported by a run; images depend only on the arguments:

    python -m data.generated_imagenet OUT [--classes 10 --outside 3]
    # OUT/imagenet100/{train,test}/<wnid>/*.JPEG, OUT/imagenet900/<wnid>/*.JPEG, OUT/vit_tv_tiny_torchvision.pth"""
import argparse
import zlib
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from data.imagenet import imagenet_wnids


def spread_wnids(count: int, offset: int = 0) -> list[str]:
    """``count`` real wnids spread over ImageNet's 1000 (every 1000 // count-th, starting at ``offset``)."""
    return [imagenet_wnids()[offset + i * (1000 // count)] for i in range(count)]


def write_wnid_tree(root: Path, wnids: list[str], counts: dict[str, int], seed: int = 0,
                    size: tuple[int, int] = (40, 36)) -> Path:
    """JPEGs (not square, so Resize and CenterCrop act) of a colour per wnid plus noise, ``counts[split]`` per class."""
    rng = np.random.default_rng(seed)
    colours = {wnid: np.random.default_rng(zlib.crc32(wnid.encode())).random(3) for wnid in wnids}
    for split, count in counts.items():
        for wnid in wnids:
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                pixels = np.clip(colours[wnid] + 0.2 * rng.standard_normal((size[1], size[0], 3)), 0, 1)
                Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"{wnid}_{k}.JPEG")
    return root


def tiny_torchvision_vit(seed: int = 0) -> torchvision.models.VisionTransformer:
    """torchvision's ViT at the size of the registered ``vit_tv_tiny`` (32 px), with a random 1000-way head."""
    torch.manual_seed(seed)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                               mlp_dim=64, num_classes=1000)
    with torch.no_grad():  # torchvision initialises the head at zero; random rows make the head surgery visible
        vit.heads.head.weight.normal_()
        vit.heads.head.bias.normal_()
    return vit.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write into")
    parser.add_argument("--classes", type=int, default=10, help="ImageNet100 stand-in classes")
    parser.add_argument("--outside", type=int, default=3, help="classes of the missing-class (ImageNet-900) folder")
    args = parser.parse_args()
    inside = spread_wnids(args.classes)
    write_wnid_tree(args.out / "imagenet100", inside, {"train": 12, "test": 4})
    outside = [w for w in spread_wnids(args.classes + args.outside, 1) if w not in inside][:args.outside]
    write_wnid_tree(args.out / "imagenet900", outside, {"": 4}, seed=1)
    torch.save(tiny_torchvision_vit().state_dict(), args.out / "vit_tv_tiny_torchvision.pth")


if __name__ == "__main__":
    main()
