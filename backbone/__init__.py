"""Backbones (the Face Transformer sizes), LoRA injection and the backbone registry."""
from backbone import face_vit  # noqa: F401  (registers the Face Transformer sizes)
from backbone.registry import BACKBONES

__all__ = ["BACKBONES"]
