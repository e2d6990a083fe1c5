"""A backbone and a classification head as one model: ``model(images, labels) -> (logits, embeddings)``."""
from typing import Optional, Tuple

import torch
import torch.nn as nn

from backbone.registry import BACKBONES
from head.registry import HEADS


class Classifier(nn.Module):
    """Embeds images with ``backbone`` and scores the embeddings with ``head``.

    With labels the head applies its margin (training loss and the original accuracy convention); without, it
    returns plain logits.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        emb = self.backbone(images)
        return self.head(emb, labels), emb


def build_model(net: str, head: str, num_classes: int, depth: Optional[int] = None,
                image_size: Optional[int] = None, margin_s: Optional[float] = None,
                margin_m: Optional[float] = None) -> Classifier:
    """Builds a registered backbone size and head; ``None`` keeps a builder's default."""
    backbone = BACKBONES.build(net, depth=depth, image_size=image_size)
    margin = {k: v for k, v in dict(s=margin_s, m=margin_m).items() if v is not None}
    return Classifier(backbone, HEADS.build(head, embed_dim=backbone.embed_dim, num_classes=num_classes, **margin))
