"""torchvision's ViT-B/16 (Dosovitskiy et al., ICLR 2021), the ImageNet100 model of the GS-LoRA papers (Table 4), and a
tiny one for tests, laid out like the Face Transformer so that LoRA and every method find the same parts. Weights come
from a local torchvision file (``vit_b_16-c867db91.pth``); inputs are ImageNet-normalised (data/imagenet.py)."""
import logging

import torch
import torch.nn as nn
from torchvision.models.vision_transformer import VisionTransformer

from backbone.face_vit import ClassTokenViT
from backbone.registry import BACKBONES
from util.checkpoint import rename_keys
from util.errors import UserError

log = logging.getLogger(__name__)


class TorchvisionViT(ClassTokenViT):
    """torchvision's ViT without its classifier; its head is always its weight file's softmax head (as the original)."""

    head_type = "softmax"

    def __init__(self, image_size: int = 224, patch_size: int = 16, dim: int = 768, depth: int = 12, heads: int = 12,
                 mlp_dim: int = 3072):
        super().__init__()
        if image_size % patch_size:
            raise UserError(f"--image_size {image_size} is not a multiple of the model's patch size {patch_size}")
        vit = VisionTransformer(image_size, patch_size, depth, heads, dim, mlp_dim)  # torchvision's own init
        self.image_size, self.patch_size, self.embed_dim = image_size, patch_size, dim
        self.patch_embed = vit.conv_proj
        self.cls_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.blocks = nn.ModuleList(vit.encoder.layers)
        self.norm = vit.encoder.ln

    def reset_parameters(self) -> None:
        """Re-draws the class token (zeros) and position embedding (N(0, 0.02)) as torchvision initialises them."""
        nn.init.zeros_(self.cls_token)
        nn.init.normal_(self.pos_embedding, std=0.02)

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(images).flatten(2).transpose(1, 2)

    def emb_drop(self, x: torch.Tensor) -> torch.Tensor:
        """No dropout after the position embedding (torchvision's is p 0)."""
        return x


# torchvision's key names -> ours; the classifier keys go to the head (cut to the run's classes by model.py).
_TORCHVISION_KEYS = [(r"^conv_proj\.", "backbone.patch_embed."), (r"^class_token$", "backbone.cls_token"),
                     (r"^encoder\.pos_embedding$", "backbone.pos_embedding"),
                     (r"^encoder\.layers\.encoder_layer_(\d+)\.", r"backbone.blocks.\1."),
                     (r"^encoder\.ln\.", "backbone.norm."), (r"^heads\.head\.", "head.")]


def is_torchvision_checkpoint(state_dict: dict[str, torch.Tensor]) -> bool:
    return "conv_proj.weight" in state_dict and "encoder.ln.weight" in state_dict


def convert_torchvision_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames a torchvision ViT state dict's keys to ours; its 1000-way classifier becomes ``head`` (all rows kept)."""
    return rename_keys(state_dict, _TORCHVISION_KEYS)


@BACKBONES.register("vit_b16")
def vit_b16(depth: int | None = None, image_size: int | None = None) -> TorchvisionViT:
    """torchvision's vit_b_16 (224 px, patch 16, width 768, depth 12, 12 heads, MLP 3072). Its weight file fixes the
    architecture: --vit_depth and --image_size only warn (the original's ImageNet scripts pass --vit_depth 6)."""
    config = dict(image_size=224, patch_size=16, dim=768, depth=12, heads=12, mlp_dim=3072)
    for flag, given, key in (("--vit_depth", depth, "depth"), ("--image_size", image_size, "image_size")):
        if given is not None and given != config[key]:
            log.warning("%s %s ignored: VIT_B16 has %s fixed by its weight file", flag, given, config[key])
    return TorchvisionViT(**config)


@BACKBONES.register("vit_tv_tiny")
def vit_tv_tiny(depth: int | None = None, image_size: int | None = None) -> TorchvisionViT:
    """torchvision's ViT architecture at test size: 32 px, patch 8, width 32, depth 2, 2 heads, MLP 64."""
    return TorchvisionViT(image_size=image_size or 32, patch_size=8, dim=32, depth=depth or 2, heads=2, mlp_dim=64)
