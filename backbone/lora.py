"""LoRA on the feed-forward linears of a Transformer, grouped per block (GS-LoRA, Zhao et al. CVPR 2024, Sec. 3.2), or
on the attention's qkv projection (``parts=3``: q, k and v each get their own rank-r update, as the original's loralib
``MergedLinear``), grouped per block, per LoRA layer or per matrix (the papers' ablations). ``LoRALinear`` keeps
``nn.Linear``'s parameter names, so a state dict without the ``lora_*`` keys fits a model without LoRA. Merging is
explicit, never on ``train()``/``eval()``: the original's merge on mode switches applied a reloaded update twice."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp
from torchvision.ops import MLP as TorchvisionMLP

# Feed-forward module types: timm's Mlp (the Face Transformer, timm ViTs) and torchvision's MLP (its ViT's MLPBlock).
# LoRA finds an FFN by its type and its linears as the FFN's direct nn.Linear children, never by parameter path.
FFN_TYPES = (Mlp, TorchvisionMLP)


class _LoRAProduct(torch.autograd.Function):
    """y = x W^T + b + scaling * (x A^T) B^T with a hand-written backward (W, b frozen), 5-44 % faster on the CPU than
    autograd's, which adds the input gradients in a separate pass and takes B's gradient from a transposed operand."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling):
        flat = x.reshape(-1, x.shape[-1])
        low_rank = flat @ lora_a.t()
        out = flat @ weight.t() if bias is None else torch.addmm(bias, flat, weight.t())
        out.addmm_(low_rank, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(flat, low_rank, weight, lora_a, lora_b)
        ctx.scaling, ctx.x_shape = scaling, x.shape
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        flat, low_rank, weight, lora_a, lora_b = ctx.saved_tensors
        grad = grad.reshape(-1, grad.shape[-1])
        grad_low_rank = (grad @ lora_b).mul_(ctx.scaling)
        grad_x = (grad @ weight).addmm_(grad_low_rank, lora_a).view(ctx.x_shape) if ctx.needs_input_grad[0] else None
        grad_a = grad_low_rank.t() @ flat if ctx.needs_input_grad[3] else None
        grad_b = (low_rank.t() @ grad).t().mul_(ctx.scaling) if ctx.needs_input_grad[4] else None
        return grad_x, None, None, grad_a, grad_b, None


def low_rank_update(lora_a: torch.Tensor, lora_b: torch.Tensor, scaling: float) -> torch.Tensor:
    """scaling * B A, shape (out, in). With A of ``parts`` x rank rows (``LoRALinear(parts=...)``), output slice i of
    out/parts rows gets scaling * B_i A_i, where A_i are A's rows i*rank ... and B_i the slice's rows of B."""
    rank = lora_b.shape[1]
    parts = lora_a.shape[0] // rank
    if parts == 1:
        return (lora_b @ lora_a) * scaling
    slices = torch.bmm(lora_b.view(parts, -1, rank), lora_a.view(parts, rank, -1))
    return slices.reshape(lora_b.shape[0], lora_a.shape[1]) * scaling


class LoRALinear(nn.Linear):
    """A linear layer with a frozen base and a trainable rank-``rank`` update on each of ``parts`` output slices."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float = 1.0, bias: bool = True,
                 parts: int = 1):
        super().__init__(in_features, out_features, bias=bias)
        self.requires_grad_(False)  # the base (weight and bias) is frozen; the factors made below train
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        if out_features % parts:
            raise ValueError(f"{out_features} outputs do not split into {parts} equal parts")
        self.rank, self.parts, self.scaling = rank, parts, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(parts * rank, in_features))
        self.lora_B = nn.Parameter(torch.empty(out_features, rank))
        self.reset_lora()

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, alpha: float = 1.0, parts: int = 1) -> "LoRALinear":
        """Wraps an existing linear layer, keeping its weight and bias tensors."""
        layer = cls(linear.in_features, linear.out_features, rank, alpha, bias=linear.bias is not None, parts=parts)
        layer.to(device=linear.weight.device, dtype=linear.weight.dtype)
        layer.load_state_dict(linear.state_dict(), strict=False)  # weight and bias; the factors keep their init
        return layer

    def reset_lora(self, a: float = math.sqrt(5)) -> None:
        """A ~ Kaiming-uniform(a), B = 0, so a fresh LoRA leaves the layer's output unchanged."""
        nn.init.kaiming_uniform_(self.lora_A, a=a)
        nn.init.zeros_(self.lora_B)

    def delta(self) -> torch.Tensor:
        """The weight update scaling * B A, shape (out, in)."""
        return low_rank_update(self.lora_A, self.lora_B, self.scaling)

    @torch.no_grad()
    def merge(self) -> torch.Tensor:
        """Folds the update into the frozen weight, zeroes B (the layer's output is unchanged) and returns it."""
        delta = self.delta()
        self.weight += delta
        self.lora_B.zero_()
        return delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        training = torch.is_grad_enabled() and (self.lora_A.requires_grad or self.lora_B.requires_grad)
        base_trains = self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad)
        if self.parts > 1 or (training and base_trains):
            # The qkv update (an ablation), or a base that trains as well (not GS-LoRA's use): autograd through the
            # folded weight computes every gradient.
            return F.linear(x, self.weight + self.delta(), self.bias)
        if not training:
            # Nothing to train (evaluation, prototypes): fold the update into the weight, one product per call.
            return F.linear(x, torch.addmm(self.weight, self.lora_B, self.lora_A, alpha=self.scaling), self.bias)
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        bias = None if self.bias is None else self.bias.to(dtype)
        with torch.autocast(device, enabled=False):  # the inputs are cast here, as autocast would have
            return _LoRAProduct.apply(x.to(dtype), self.weight.to(dtype), bias, self.lora_A.to(dtype),
                                      self.lora_B.to(dtype), self.scaling)

    def extra_repr(self) -> str:
        parts = f", parts={self.parts}" if self.parts > 1 else ""
        return f"{super().extra_repr()}, rank={self.rank}{parts}, scaling={self.scaling:g}"


def ffn_linears(block: nn.Module) -> list[tuple[nn.Module, str]]:
    """(FFN module, child name) of the ``nn.Linear`` children, in forward order, of ``block``'s first ``FFN_TYPES``."""
    for module in block.modules():
        if isinstance(module, FFN_TYPES):
            return [(module, name) for name, child in module.named_children() if isinstance(child, nn.Linear)]
    raise TypeError(f"no feed-forward module of a known type ({', '.join(t.__name__ for t in FFN_TYPES)}) "
                    f"in block {type(block).__name__}")


def attention_qkv(block: nn.Module) -> list[tuple[nn.Module, str]]:
    """(attention module, 'qkv') of ``block``'s first submodule with a ``qkv`` linear (torchvision's ViT has none)."""
    for module in block.modules():
        if isinstance(getattr(module, "qkv", None), nn.Linear):
            return [(module, "qkv")]
    raise TypeError(f"no attention with a qkv linear in block {type(block).__name__}: LoRA on the attention needs the "
                    f"Face Transformer or a timm ViT")


# --lora_pos: where LoRA goes, as (finder of the block's linears, number of equal output parts with their own update).
LORA_POSITIONS = {"FFN": (ffn_linears, 1), "Attention": (attention_qkv, 3)}
# --grouping: how the group lasso groups the LoRA matrices (one group per block, per LoRA layer, per matrix).
GROUPINGS = ("block", "lora", "matrix")


def inject_lora(backbone: nn.Module, rank: int, alpha: float = 1.0, position: str = "FFN") -> None:
    """Replaces the linears at ``position`` of every block by ``LoRALinear`` layers (in place) with their weights."""
    find, parts = LORA_POSITIONS[position]
    for block in backbone.blocks:
        for owner, name in find(block):
            linear = getattr(owner, name)
            if not isinstance(linear, LoRALinear):
                setattr(owner, name, LoRALinear.from_linear(linear, rank, alpha, parts))


def lora_layers(module: nn.Module) -> list[LoRALinear]:
    return [m for m in module.modules() if isinstance(m, LoRALinear)]


def lora_groups(backbone: nn.Module, grouping: str = "block") -> list[list[nn.Parameter]]:
    """The group lasso's groups, in block order: one per block, per LoRA layer or per LoRA matrix (``grouping``)."""
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}; choose from {', '.join(GROUPINGS)}")
    layers = [[[layer.lora_A, layer.lora_B] for layer in lora_layers(block)] for block in backbone.blocks]
    return {"block": [[p for layer in block for p in layer] for block in layers],
            "lora": [layer for block in layers for layer in block],
            "matrix": [[p] for block in layers for layer in block for p in layer]}[grouping]


def mark_only_lora_trainable(model: nn.Module) -> None:
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name.rsplit(".", 1)[-1])


def reset_lora(model: nn.Module, a: float = math.sqrt(5)) -> None:
    for layer in lora_layers(model):
        layer.reset_lora(a)


def merge_lora(model: nn.Module) -> dict[str, torch.Tensor]:
    """Merges every LoRA layer of ``model``; returns the weight deltas keyed by the weight's state-dict name."""
    return {f"{name}.weight": layer.merge() for name, layer in model.named_modules() if isinstance(layer, LoRALinear)}


def without_lora(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict for a model without LoRA: the (merged) weights only."""
    return {k: v for k, v in state_dict.items() if "lora_" not in k.rsplit(".", 1)[-1]}
