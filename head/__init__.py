"""Classification heads: CosFace, ArcFace and a plain linear softmax head."""
from head import linear, margin  # noqa: F401  (registers the heads)
from head.registry import HEADS

__all__ = ["HEADS"]
