"""Backbones (Face Transformer, ViT-B/16), LoRA injection, and the classifier that joins a backbone to a head."""
from backbone import face_vit  # noqa: F401  (registers the Face Transformer sizes)
from backbone.classifier import Classifier, build_model
from backbone.registry import BACKBONES

__all__ = ["BACKBONES", "Classifier", "build_model"]
