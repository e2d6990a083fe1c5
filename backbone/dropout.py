"""Dropout whose CPU masks cost a fifth of ``nn.Dropout``'s (one serial Mersenne-Twister call per element: 20 % of a
Face Transformer step on non-Intel CPUs): each 64-bit draw of the default CPU generator (``torch.manual_seed``
reproduces it) gives four 16-bit uniforms, an element dropped with probability round(p * 65536) / 65536 (within 8e-6
of p), survivors scaled by the inverse keep probability. ``add_dropped`` folds the next residual into the product: the
same floats as separate passes, each 15-35 ms on a (48 x 197 x 2048) activation; other devices use ``F.dropout``."""
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


def _masked_scale(x: torch.Tensor, mask: torch.Tensor, scale: float, base=None) -> torch.Tensor:
    """base + scale * x * mask (base 0 when None). The bool mask becomes 0/1 numbers of x's dtype for this one product
    (a bool operand or ``where`` is slower); between forward and backward it stays boolean (1 byte per element)."""
    keep = mask.view(torch.uint8).to(x.dtype)
    return torch.addcmul(x.new_zeros(()) if base is None else base, x, keep, value=scale)


class _MaskedScale(torch.autograd.Function):
    """out = residual + x * mask * scale (no residual: None); the backward reuses the boolean mask (1 byte/element)."""

    @staticmethod
    def forward(ctx, residual, x, mask, scale):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return _masked_scale(x, mask, scale, base=residual)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        grad_x = _masked_scale(grad, mask, ctx.scale) if ctx.needs_input_grad[1] else None
        return grad if ctx.needs_input_grad[0] else None, grad_x, None, None


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the cheaper CPU mask above; identical behaviour elsewhere and in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not self._cheap_mask_applies(x):
            return F.dropout(x, self.p, True, self.inplace)
        return _MaskedScale.apply(None, x, keep_mask(x.shape, self.p), self._scale())

    def _cheap_mask_applies(self, x: torch.Tensor) -> bool:
        return x.device.type == "cpu" and self.p < 1.0 and not self.inplace

    def _scale(self) -> float:
        return _LEVELS / (_LEVELS - dropped_levels(self.p))


def add_dropped(residual: torch.Tensor, x: torch.Tensor, dropout: nn.Module) -> torch.Tensor:
    """residual + dropout(x), in one pass over memory for a training ``FastDropout`` on the CPU (the same floats)."""
    if (isinstance(dropout, FastDropout) and dropout.training and dropout.p > 0.0
            and dropout._cheap_mask_applies(x) and residual.shape == x.shape):
        return _MaskedScale.apply(residual, x, keep_mask(x.shape, dropout.p), dropout._scale())
    return residual + dropout(x)


def use_fast_dropout(module: nn.Module) -> nn.Module:
    """Swaps every ``nn.Dropout`` inside ``module`` for a ``FastDropout`` with the same p (in place)."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, FastDropout(child.p, child.inplace))
        else:
            use_fast_dropout(child)
    return module
