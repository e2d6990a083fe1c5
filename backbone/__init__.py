"""Backbones (the Face Transformer sizes, torchvision's ViT-B/16), LoRA injection and the backbone registry."""
from backbone import face_vit, vit_b16  # noqa: F401  (registers the Face Transformer sizes and ViT-B/16)
from backbone.registry import BACKBONES

__all__ = ["BACKBONES"]
