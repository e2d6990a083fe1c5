"""Dropout whose CPU masks cost a fifth of ``nn.Dropout``'s.

On CPUs that are not Intel's, PyTorch draws a dropout mask with one serial Mersenne-Twister call per element
(``bernoulli_``); in a training step of the Face Transformer that was 20 % of the time. Here each 64-bit draw gives
four 16-bit uniforms, the mask is kept as booleans, and the same mask scales the gradient. Each element is dropped
with probability round(p * 65536) / 65536 (within 8e-6 of p) and survivors are scaled by the inverse of the keep
probability actually used, so the output stays unbiased. Masks come from PyTorch's default CPU generator, so
``torch.manual_seed`` reproduces them, independently of the thread count. Other devices use ``F.dropout``.

The mask is applied as one product of float tensors (``addcmul``: 0 + scale * x * mask), and ``add_dropped`` folds
the residual connection that follows most dropouts of a Transformer into that same product (x + scale * y * mask).
On these 2-core machines one elementwise pass over a (48 x 197 x 2048) activation costs 15-35 ms, about 0.3 % of a
full fine-tuning step, and a dropout used to take four of them plus the addition. Both give the same floats as
masking, scaling and adding one after another.
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


def _masked_scale(x: torch.Tensor, mask: torch.Tensor, scale: float, base=None) -> torch.Tensor:
    """base + scale * x * mask (base 0 when None). A product with a bool operand converts it to floats first and
    ``where`` runs slower than a float product, so the mask becomes 0/1 numbers of x's dtype here, for this one
    product; between the forward and the backward it stays boolean (1 byte per element)."""
    keep = mask.view(torch.uint8).to(x.dtype)
    return torch.addcmul(x.new_zeros(()) if base is None else base, x, keep, value=scale)


class _MaskedScale(torch.autograd.Function):
    """y = x * mask * scale; the backward applies the same boolean mask (1 byte per element)."""

    @staticmethod
    def forward(ctx, x, mask, scale):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return _masked_scale(x, mask, scale)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return _masked_scale(grad, mask, ctx.scale), None, None


class _AddMaskedScale(torch.autograd.Function):
    """out = residual + x * mask * scale; the residual's gradient passes through unchanged."""

    @staticmethod
    def forward(ctx, residual, x, mask, scale):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return _masked_scale(x, mask, scale, base=residual)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        grad_x = _masked_scale(grad, mask, ctx.scale) if ctx.needs_input_grad[1] else None
        return grad, grad_x, None, None


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the cheaper CPU mask above; identical behaviour elsewhere and in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not self._cheap_mask_applies(x):
            return F.dropout(x, self.p, True, self.inplace)
        return _MaskedScale.apply(x, keep_mask(x.shape, self.p), self._scale())

    def _cheap_mask_applies(self, x: torch.Tensor) -> bool:
        return x.device.type == "cpu" and self.p < 1.0 and not self.inplace

    def _scale(self) -> float:
        return _LEVELS / (_LEVELS - dropped_levels(self.p))


def add_dropped(residual: torch.Tensor, x: torch.Tensor, dropout: nn.Module) -> torch.Tensor:
    """residual + dropout(x): one pass over memory when ``dropout`` is a training ``FastDropout`` on the CPU, the
    same mask draw (and the same floats) as adding ``dropout(x)``."""
    if (isinstance(dropout, FastDropout) and dropout.training and dropout.p > 0.0
            and dropout._cheap_mask_applies(x) and residual.shape == x.shape):
        return _AddMaskedScale.apply(residual, x, keep_mask(x.shape, dropout.p), dropout._scale())
    return residual + dropout(x)


def use_fast_dropout(module: nn.Module) -> nn.Module:
    """Swaps every ``nn.Dropout`` inside ``module`` for a ``FastDropout`` with the same p (in place)."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, FastDropout(child.p, child.inplace))
        else:
            use_fast_dropout(child)
    return module
