"""The Face Transformer (ViT-P8S8 of the GS-LoRA papers), a pre-norm ViT with a class token, and its named sizes. Kept
from the original so that its checkpoints load and behave the same: the attention scale is ``dim ** -0.5`` (model
width) and the attention width is ``heads * dim_head``. The FFN is timm's ``Mlp``; LoRA finds it by that type."""
import functools
import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp

from backbone.dropout import add_dropped, use_fast_dropout
from backbone.registry import BACKBONES
from util.checkpoint import rename_keys
from util.errors import UserError


def attention(qkv: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q k^T * scale) v for ``qkv`` (B, tokens, 3, heads, dim_head) -> (B, tokens, heads * dim_head); bf16 on
    the CPU takes plain batched products: the fused kernel is 4x slower there on these 50-token sequences."""
    b, n, _, heads, dim_head = qkv.shape
    if qkv.device.type == "cpu" and qkv.dtype == torch.bfloat16:
        q, k, v = qkv.permute(2, 0, 3, 1, 4).reshape(3, b * heads, n, dim_head).unbind(0)
        weights = torch.baddbmm(q.new_zeros(1, 1, 1), q, k.transpose(1, 2), beta=0.0, alpha=scale).softmax(-1)
        out = torch.bmm(weights, v).view(b, heads, n, dim_head)
    else:
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return out.transpose(1, 2).reshape(b, n, heads * dim_head)


class Attention(nn.Module):
    """Multi-head self-attention without a qkv bias (as the original); the block applies its output dropout."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.scale = dim ** -0.5  # the original scales by the model width: kept for checkpoint parity
        self.qkv, self.proj = nn.Linear(dim, 3 * inner, bias=False), nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return self.proj(attention(self.qkv(x).view(b, n, 3, self.heads, self.dim_head), self.scale))


class Block(nn.Module):
    """x + Drop(Attn(LN(x))), then x + Drop(FFN(LN(x))) (the FFN drops after its activation as well); the residual
    dropouts live here, so that ``add_dropped`` applies and adds each in one pass."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head)
        self.attn_drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim, act_layer=nn.GELU, drop=(dropout, 0.0))
        self.mlp_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = add_dropped(x, self.attn(self.norm1(x)), self.attn_drop)
        return add_dropped(x, self.mlp(self.norm2(x)), self.mlp_drop)


class ClassTokenViT(nn.Module):
    """What the Face Transformer and torchvision's ViT share: ``patch_embed``, ``cls_token`` and ``pos_embedding``
    (the stem), ``blocks``, ``norm``; the embedding is the class token after the final norm."""

    def stem_parameters(self):
        """The parameters before the first block: patch embedding, class token, position embedding."""
        return list(self.patch_embed.parameters()) + [self.cls_token, self.pos_embedding]

    def tokens(self, images: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """The token sequence (B, patches + 1, dim) after the first ``depth`` blocks (default: all)."""
        x = self.patches(images)
        x = self.emb_drop(torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding)
        for block in self.blocks[:depth]:
            x = block(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tokens(images)[:, 0])


class FaceViT(ClassTokenViT):
    """Face Transformer: images in [0, 1] (B, 3, S, S) -> embeddings (B, dim), S a multiple of the patch size."""

    def __init__(self, image_size: int = 112, patch_size: int = 8, dim: int = 512, depth: int = 6, heads: int = 8,
                 dim_head: int = 64, mlp_dim: int = 2048, dropout: float = 0.1, emb_dropout: float = 0.1,
                 channels: int = 3):
        super().__init__()
        if image_size % patch_size:
            raise UserError(f"--image_size {image_size} is not a multiple of the model's patch size {patch_size}; "
                            f"pass a multiple such as {image_size - image_size % patch_size or patch_size}")
        self.image_size, self.patch_size, self.embed_dim = image_size, patch_size, dim
        self.patch_embed = nn.Linear(channels * patch_size ** 2, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (image_size // patch_size) ** 2 + 1, dim))
        self.emb_drop = nn.Dropout(emb_dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dim_head, mlp_dim, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        use_fast_dropout(self)

    def reset_parameters(self) -> None:
        """Re-draws the class token and position embedding (N(0, 1), as the original); layers reset themselves."""
        nn.init.normal_(self.cls_token)
        nn.init.normal_(self.pos_embedding)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, patches, p*p*C), patches row-major, inside a patch rows, columns, then channels."""
        (b, c, h, w), p = images.shape, self.patch_size
        x = images.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(self.patchify(images))


# The original's key names -> ours; block i of the original is transformer.layers.i (0: attention, 1: FFN).
_ORIGINAL_BLOCK_KEYS = (("0.fn.norm", "norm1"), ("0.fn.fn.to_qkv", "attn.qkv"), ("0.fn.fn.to_out.0", "attn.proj"),
                        ("1.fn.norm", "norm2"), ("1.fn.fn.net.0", "mlp.fc1"), ("1.fn.fn.net.3", "mlp.fc2"))
_ORIGINAL_KEYS = [(r"^patch_to_embedding\.", "backbone.patch_embed."), (r"^(cls_token|pos_embedding)$", r"backbone.\1"),
                  *((rf"^transformer\.layers\.(\d+)\.{re.escape(old)}\.", rf"backbone.blocks.\1.{new}.")
                    for old, new in _ORIGINAL_BLOCK_KEYS),
                  (r"^mlp_head\.0\.", "backbone.norm."), (r"^loss\.weight$", "head.weight")]


def is_original_checkpoint(state_dict: dict[str, torch.Tensor]) -> bool:
    return "patch_to_embedding.weight" in state_dict


def convert_original_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames the original repository's keys (``transformer.layers.{i}.1.fn.fn.net.0`` ...) to ours, dropping its LoRA
    factors: its checkpoints hold merged weights, and the factors would apply the update twice (reference bug 11)."""
    kept = {key.removeprefix("module."): value for key, value in state_dict.items() if "lora_" not in key}
    return rename_keys(kept, _ORIGINAL_KEYS)


def _face_vit(defaults: dict, **overrides) -> FaceViT:
    return FaceViT(**{**defaults, **{k: v for k, v in overrides.items() if v is not None}})


# The named sizes: the papers' Face Transformer; the reduced configuration of reference/original-speed.md; a CPU size
# (quick start, CASIA-100 CPU runs); a model for unit tests. Overrides (depth, image_size) that are None keep them.
FACE_VIT_SIZES = {
    ("vit_face", "VIT"): dict(image_size=112, patch_size=8, dim=512, depth=6, heads=8, dim_head=64, mlp_dim=2048),
    ("vit_face_reduced",): dict(image_size=56, patch_size=8, dim=256, depth=6, heads=8, dim_head=64, mlp_dim=1024),
    ("vit_face_small",): dict(image_size=32, patch_size=8, dim=128, depth=6, heads=4, dim_head=32, mlp_dim=256),
    ("vit_face_tiny",): dict(image_size=16, patch_size=4, dim=32, depth=2, heads=2, dim_head=16, mlp_dim=64,
                             dropout=0.0, emb_dropout=0.0)}
for _names, _defaults in FACE_VIT_SIZES.items():
    BACKBONES.register(*_names)(functools.partial(_face_vit, _defaults))

