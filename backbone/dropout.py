"""Dropout whose CPU masks cost a fifth of ``nn.Dropout``'s.

On CPUs that are not Intel's, PyTorch draws a dropout mask with one serial Mersenne-Twister call per element
(``bernoulli_``); in a training step of the Face Transformer that was 20 % of the time. Here each 64-bit draw gives
four 16-bit uniforms, the mask is kept as booleans, and the same mask scales the gradient. Each element is dropped
with probability round(p * 65536) / 65536 (within 8e-6 of p) and survivors are scaled by the inverse of the keep
probability actually used, so the output stays unbiased. Masks come from PyTorch's default CPU generator, so
``torch.manual_seed`` reproduces them, independently of the thread count. Other devices use ``F.dropout``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

_LEVELS = 1 << 16


def dropped_levels(p: float) -> int:
    """How many of the 65,536 16-bit values mean "drop": round(p * 65536)."""
    return round(p * _LEVELS)


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A boolean mask, True with probability 1 - dropped_levels(p) / 65536, from 16-bit uniforms."""
    numel = shape.numel()
    words = torch.empty((numel + 3) // 4, dtype=torch.int64).random_(torch.iinfo(torch.int64).min, None)
    uniforms = words.view(torch.int16)[:numel]  # each 16-bit slice of a uniform 64-bit word is uniform
    return (uniforms >= -(_LEVELS // 2) + dropped_levels(p)).view(shape)


class _MaskedScale(torch.autograd.Function):
    """y = x * mask * scale; the backward applies the same boolean mask (1 byte per element)."""

    @staticmethod
    def forward(ctx, x, mask, scale):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return torch.where(mask, x * scale, 0.0)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad * ctx.scale, 0.0), None, None


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the cheaper CPU mask above; identical behaviour elsewhere and in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.p >= 1.0 or self.inplace:
            return F.dropout(x, self.p, True, self.inplace)
        return _MaskedScale.apply(x, keep_mask(x.shape, self.p), _LEVELS / (_LEVELS - dropped_levels(self.p)))


def use_fast_dropout(module: nn.Module) -> nn.Module:
    """Swaps every ``nn.Dropout`` inside ``module`` for a ``FastDropout`` with the same p (in place)."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, FastDropout(child.p, child.inplace))
        else:
            use_fast_dropout(child)
    return module
