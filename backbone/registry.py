"""The registry of backbone builders (the Face Transformer sizes in face_vit.py)."""
from util.registry import Registry

BACKBONES = Registry("backbone")
