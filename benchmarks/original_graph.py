"""The original implementation's compute graph (reference/original-behaviour.md 1.1, 2.3, 2.4), which
``benchmarks/speed.py --side_by_side`` times in one process with our code, so that machine speed and load cancel out of
the ratio. Not the original's code but its operations in its order: Residual(PreNorm(f)) blocks, einsum attention with
a separate softmax, ``nn.Dropout``, loralib-style LoRA (x W^T + b + (x A^T) B^T * scaling), a one-hot CosFace head."""
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Linear):
    """A frozen linear layer plus a rank-r update, evaluated as two extra products on every call."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__(in_features, out_features)
        self.lora_A = nn.Parameter(torch.randn(rank, in_features) / in_features ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        self.scaling = 1.0 / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads, self.scale = heads, dim ** -0.5
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        weights = (torch.einsum("bhid,bhjd->bhij", q, k) * self.scale).softmax(dim=-1)
        out = torch.einsum("bhij,bhjd->bhid", weights, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Residual(nn.Module):
    """x + f(LayerNorm(x)): the original's Residual(PreNorm(f))."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x)) + x


class FaceTransformer(nn.Module):
    """The Face Transformer with a CosFace head (s 64, m 0.35); ``forward(images, labels)`` -> (logits, embedding)."""

    def __init__(self, image_size: int, dim: int, mlp_dim: int, depth: int = 6, heads: int = 8, dim_head: int = 64,
                 patch_size: int = 8, num_classes: int = 100, dropout: float = 0.1):
        super().__init__()
        self.patch_size = patch_size
        self.patch_to_embedding = nn.Linear(3 * patch_size ** 2, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (image_size // patch_size) ** 2 + 1, dim))
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(nn.Sequential(
            Residual(dim, Attention(dim, heads, dim_head, dropout)),
            Residual(dim, nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                        nn.Linear(mlp_dim, dim), nn.Dropout(dropout))))
            for _ in range(depth))
        self.mlp_head = nn.LayerNorm(dim)
        self.head = nn.Parameter(torch.randn(num_classes, dim) * dim ** -0.5)

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        (b, c, h, w), p = images.shape, self.patch_size
        x = images.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p * p * c)
        x = torch.cat((self.cls_token.expand(b, -1, -1), self.patch_to_embedding(x)), dim=1)
        x += self.pos_embedding
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x)
        emb = self.mlp_head(x[:, 0])
        cosine = F.linear(F.normalize(emb), F.normalize(self.head))
        one_hot = torch.zeros(cosine.size(), device=cosine.device).scatter_(1, labels.view(-1, 1), 1)
        return (one_hot * (cosine - 0.35) + (1.0 - one_hot) * cosine) * 64.0, emb


def add_lora(model: FaceTransformer, rank: int) -> list[list[nn.Parameter]]:
    """LoRA on both FFN linears of every block, everything else frozen; returns the factors grouped per block."""
    groups = []
    for ffn in (layer[1].fn for layer in model.layers):  # each block's FFN: Linear, GELU, Dropout, Linear, Dropout
        for index in (0, 3):
            plain = ffn[index]
            ffn[index] = LoRALinear(plain.in_features, plain.out_features, rank).to(plain.weight.device)
            ffn[index].load_state_dict(plain.state_dict(), strict=False)
        groups.append([ffn[i].lora_A for i in (0, 3)] + [ffn[i].lora_B for i in (0, 3)])
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name)
    return groups


def kl_to_prototypes(emb: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    return F.kl_div(F.log_softmax(emb, -1), F.log_softmax(prototypes, -1), reduction="batchmean", log_target=True)


def gs_lora_pp_step(model: FaceTransformer, rank: int = 8, bound: float = 105.0, alpha: float = 0.01,
                    prototype_weight: float = 0.01, prototype_bound: float = 18.0) -> Callable:
    """A step function (remain batch, forget batch) -> None: GS-LoRA++ with two forward passes."""
    groups = add_lora(model, rank)
    optimizer = torch.optim.AdamW([p for group in groups for p in group], lr=1e-2, weight_decay=0.05)
    prototypes = torch.randn(model.head.shape[0], model.head.shape[1], device=model.head.device)

    def step(remain, forget):
        logits_r, _ = model(*remain)
        logits_f, emb_f = model(*forget)
        loss = (F.cross_entropy(logits_r, remain[1]) + F.relu(bound - F.cross_entropy(logits_f, forget[1]))
                + alpha * sum(torch.sqrt(sum(p.pow(2).sum() for p in group)) for group in groups)
                + prototype_weight * F.relu(prototype_bound - kl_to_prototypes(emb_f, prototypes[forget[1]])))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def fine_tuning_step(model: FaceTransformer, weight: float = 0.1) -> Callable:
    """A step function (remain batch, forget batch) -> None: L2 on both batches in one pass, head frozen."""
    params = [p for name, p in model.named_parameters() if name != "head"]
    model.head.requires_grad_(False)
    anchors = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)

    def step(remain, forget):
        images, labels = torch.cat([remain[0], forget[0]]), torch.cat([remain[1], forget[1]])
        logits, _ = model(images, labels)
        loss = F.cross_entropy(logits, labels) + weight * sum((p - a).pow(2).sum() for p, a in zip(params, anchors))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step
