"""The model of a run: a backbone and a classification head as one module, its builder and its weight loader.

``model(images, labels) -> (logits, embeddings)``. It sits above backbone/ and head/, which know nothing of each
other.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from backbone import BACKBONES
from backbone.face_vit import convert_original_checkpoint, is_original_checkpoint
from backbone.lora import without_lora
from head import HEADS
from util.errors import UserError


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


def load_model_weights(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Loads merged weights into ``model``; LoRA factors are neither expected nor loaded.

    A state dict of the original repository (its key names) is converted first. Raises UserError naming the
    missing, unexpected and mis-shaped keys when the weights do not fit.
    """
    if is_original_checkpoint(state_dict):
        state_dict = convert_original_checkpoint(state_dict)
    own = without_lora(model.state_dict())
    given = without_lora(state_dict)
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    mis_shaped = [f"{k} {tuple(given[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own.keys() & given.keys() if own[k].shape != given[k].shape]
    if missing or unexpected or mis_shaped:
        parts = [f"{label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected),
                                     ("shape mismatch", sorted(mis_shaped))) if keys]
        raise UserError(f"{source} does not fit the model ({'; '.join(parts)}); check --net, --vit_depth, "
                        f"--image_size and --head")
    model.load_state_dict(given, strict=False)
