"""The registry of backbone builders (see face_vit.py and vit_b16.py)."""
from util.registry import Registry

BACKBONES = Registry("backbone")
