"""The registry of classification heads (see margin.py and linear.py)."""
from util.registry import Registry

HEADS = Registry("head")
