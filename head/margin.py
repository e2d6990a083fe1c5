"""Margin heads for face recognition: CosFace (Wang et al. 2018) and ArcFace (Deng et al. 2019).

``plain = s * cos(theta_j)``, with the target's margin given a label. The original reports ``argmax`` of the margin
logits at the true label ("original"); we also report the plain ``argmax`` ("plain"), see util/metrics.py."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from head.registry import HEADS


class MarginHead(nn.Module):
    """Cosine classifier with a margin on the target logit. Weight (num_classes, embed_dim), Xavier-uniform."""

    def __init__(self, embed_dim: int, num_classes: int, s: float = 64.0, m: float = 0.35):
        super().__init__()
        self.s, self.m = s, m
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform class weights (also how Retrain re-initialises the head)."""
        nn.init.xavier_uniform_(self.weight)

    def plain_logits(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, C) scaled cosines, no margin."""
        return self.s * F.linear(F.normalize(emb), F.normalize(self.weight))

    def apply_margin(self, plain: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        plain = self.plain_logits(emb)
        return plain if labels is None else self.apply_margin(plain, labels)


@HEADS.register("cosface")
class CosFace(MarginHead):
    """Large-margin cosine head: target logit s * (cos - m). Defaults s 64, m 0.35."""

    def apply_margin(self, plain: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return plain - (self.s * self.m) * F.one_hot(labels, plain.shape[1]).to(plain.dtype)


@HEADS.register("arcface")
class ArcFace(MarginHead):
    """Additive angular margin head: target logit s * cos(theta + m), with the usual fallback
    ``cos - sin(pi - m) * m`` where theta + m would pass pi. Defaults s 64, m 0.5."""

    def __init__(self, embed_dim: int, num_classes: int, s: float = 64.0, m: float = 0.5):
        super().__init__(embed_dim, num_classes, s, m)

    def apply_margin(self, plain: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = (plain / self.s).clamp(-1.0, 1.0)
        sin = torch.sqrt((1.0 - cos * cos).clamp_min(0.0))
        with_margin = cos * math.cos(self.m) - sin * math.sin(self.m)
        with_margin = torch.where(cos > math.cos(math.pi - self.m), with_margin,
                                  cos - math.sin(math.pi - self.m) * self.m)
        target = F.one_hot(labels, plain.shape[1]).bool()
        return self.s * torch.where(target, with_margin, cos)
