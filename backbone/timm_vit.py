"""timm Vision Transformers by name (``-n timm:vit_small_patch16_224``), weights from a local ``--pretrained_file``
(nothing is downloaded), exposing the ``blocks``, ``norm``, ``tokens`` and ``stem_parameters`` the methods use."""
import torch
import torch.nn as nn

from util.errors import UserError

PREFIX = "timm:"


def is_timm_name(name: str) -> bool:
    return name.lower().startswith(PREFIX)


class TimmViT(nn.Module):
    """A timm ``VisionTransformer`` pooling its class token; ``None`` keeps the named architecture's depth or size."""

    head_type = "softmax"

    def __init__(self, name: str, depth: int | None = None, image_size: int | None = None,
                 pretrained_file: str | None = None):
        super().__init__()
        import timm
        if name not in timm.list_models():
            raise UserError(f"timm has no model '{name}' (timm.list_models() lists them)")
        overrides = {k: v for k, v in dict(depth=depth, img_size=image_size).items() if v is not None}
        if pretrained_file:
            overrides.update(pretrained=True, pretrained_cfg_overlay=dict(file=pretrained_file))
        self.vit = timm.create_model(name, num_classes=0, **overrides)
        if getattr(self.vit, "global_pool", None) != "token" or getattr(self.vit, "cls_token", None) is None:
            raise UserError(f"timm model '{name}' does not pool a class token; pick a ViT with one")
        self.embed_dim, self.image_size = self.vit.num_features, self.vit.patch_embed.img_size[0]

    # The parts the methods use, as properties: attributes would register the modules twice in the state dict.
    blocks = property(lambda self: self.vit.blocks)
    norm = property(lambda self: self.vit.norm)

    def stem_parameters(self) -> list[nn.Parameter]:
        """Everything before the first block: patch embedding, class token, position embedding."""
        blocks = {id(p) for p in self.vit.blocks.parameters()}
        after = {id(p) for m in (self.vit.norm, self.vit.fc_norm, self.vit.head) for p in m.parameters()}
        return [p for p in self.vit.parameters() if id(p) not in blocks | after]

    def tokens(self, images: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """The token sequence (B, tokens, dim) after the first ``depth`` blocks (default: all)."""
        x = self.vit.norm_pre(self.vit.patch_drop(self.vit._pos_embed(self.vit.patch_embed(images))))
        for block in self.vit.blocks[:depth]:
            x = block(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vit(images)


def timm_backbone(name: str, depth: int | None = None, image_size: int | None = None,
                  pretrained_file: str | None = None) -> TimmViT:
    """The backbone for ``-n timm:NAME``."""
    return TimmViT(name[len(PREFIX):], depth, image_size, pretrained_file)
