"""The model of a run, ``model(images, labels) -> (logits, embeddings)``: a backbone and a head (which know nothing of
each other) as one module, its builder and its weight loader."""
import logging

import torch
import torch.nn as nn

from backbone import BACKBONES
from backbone.face_vit import convert_original_checkpoint, is_original_checkpoint
from backbone.lora import without_lora
from backbone.timm_vit import is_timm_name, timm_backbone
from backbone.vit_b16 import convert_torchvision_checkpoint, is_torchvision_checkpoint
from data.imagenet import imagenet_rows
from head import HEADS
from util.checkpoint import load_checkpoint
from util.errors import UserError

log = logging.getLogger(__name__)


class Classifier(nn.Module):
    """Embeds images with ``backbone``; ``head`` scores them, with its margin when given labels, else plain logits."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.backbone(images)
        return self.head(emb, labels), emb


def build_model(net: str, head: str, num_classes: int, depth: int | None = None,
                image_size: int | None = None, margin_s: float | None = None,
                margin_m: float | None = None, pretrained_file: str | None = None) -> Classifier:
    """Builds a registered backbone size (or ``timm:NAME``, weights from ``pretrained_file``) and head; ``None`` keeps a
    builder's default. A backbone with a ``head_type`` (ViT-B/16's linear head) always gets that head."""
    backbone = (timm_backbone(net, depth=depth, image_size=image_size, pretrained_file=pretrained_file)
                if is_timm_name(net) else BACKBONES.build(net, depth=depth, image_size=image_size))
    fixed = getattr(backbone, "head_type", None)
    if fixed and head != fixed:
        log.info("-head %s ignored: %s uses its pre-trained %s head (plain CE)", head, net, fixed)
        head = fixed
    margin = {k: v for k, v in dict(s=margin_s, m=margin_m).items() if v is not None}
    return Classifier(backbone, HEADS.build(head, embed_dim=backbone.embed_dim, num_classes=num_classes, **margin))


def cut_head(state_dict: dict[str, torch.Tensor], rows: list[int]) -> dict[str, torch.Tensor]:
    """The state dict with its head cut to ``rows``: local class i takes row ``rows[i]`` of the weight and bias."""
    return {k: v[rows].clone() if k in ("head.weight", "head.bias") else v for k, v in state_dict.items()}


def pretrained_weights(state_dict: dict[str, torch.Tensor], classes: list[str]
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """A ``-r`` state dict in our key names and, for an ImageNet-1k head and fewer ``classes``, that head cut through
    the class folders' wnids and returned whole ({'weight', 'bias'}, for Acc_m); else the full head is None."""
    if is_torchvision_checkpoint(state_dict):
        state_dict = convert_torchvision_checkpoint(state_dict)
    weight = state_dict.get("head.weight")
    if weight is None or weight.shape[0] != 1000 or len(classes) == 1000:
        return state_dict, None
    full = {"weight": weight, "bias": state_dict["head.bias"]}
    return cut_head(state_dict, imagenet_rows(classes, "the dataset (cutting an ImageNet head)")), full


def load_model_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Loads merged weights (an original repository's converted; LoRA factors not); a misfit is a UserError."""
    if is_original_checkpoint(state_dict):
        state_dict = convert_original_checkpoint(state_dict)
    own, given = without_lora(model.state_dict()), without_lora(state_dict)
    missing, unexpected = sorted(set(own) - set(given)), sorted(set(given) - set(own))
    mis_shaped = [f"{k} {tuple(given[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own.keys() & given.keys() if own[k].shape != given[k].shape]
    if missing or unexpected or mis_shaped:
        parts = [f"{label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected),
                                     ("shape mismatch", sorted(mis_shaped))) if keys]
        raise UserError(f"{source} does not fit the model ({'; '.join(parts)}); check --net, --vit_depth, "
                        f"--image_size and --head")
    model.load_state_dict(given, strict=False)


def model_from_file(path, classes: list[str], model_args: dict[str, object]) -> Classifier:
    """The file's model, built with its model arguments (else ``model_args``), an ImageNet head cut to ``classes``."""
    checkpoint = load_checkpoint(path)
    model = build_model(**checkpoint.get("model_args", model_args))
    load_model_weights(model, pretrained_weights(checkpoint["model"], classes)[0], str(path))
    return model
