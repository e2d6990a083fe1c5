"""A plain linear softmax head (used for ImageNet and as a margin-free alternative for faces)."""

import torch
import torch.nn as nn

from head.registry import HEADS


@HEADS.register("softmax", "linear")
class LinearHead(nn.Linear):
    """Linear logits; the label is accepted and ignored, so both accuracy conventions coincide."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__(embed_dim, num_classes)

    def plain_logits(self, emb: torch.Tensor) -> torch.Tensor:
        return super().forward(emb)

    def apply_margin(self, plain: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return plain

    def forward(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.plain_logits(emb)
