"""The CPU dropout: drop rate, exact survivor scale, gradient through the same mask, reproducibility, and the
residual addition fused with it."""
import torch
import torch.nn as nn

from backbone.dropout import FastDropout, add_dropped, keep_mask, use_fast_dropout
from model import build_model

P = 0.1
DROPPED_LEVELS = 6554  # round(0.1 * 65536)
SCALE = 65536 / (65536 - DROPPED_LEVELS)  # inverse of the keep probability actually used


def test_drop_rate_is_p_in_every_16_bit_lane():
    torch.manual_seed(0)
    keep = keep_mask(torch.Size([400_000]), P)
    # Each 64-bit draw feeds four consecutive elements; a biased lane (say a sign bit never set) shows up here.
    for lane in range(4):
        rate = 1 - keep[lane::4].float().mean().item()
        assert abs(rate - DROPPED_LEVELS / 65536) < 0.004  # 4.5 standard deviations at 100,000 draws


def test_survivors_scale_by_the_inverse_keep_probability_and_gradient_uses_the_same_mask():
    torch.manual_seed(1)
    drop = FastDropout(P).train()
    x = torch.ones(50_000, requires_grad=True)
    weights = torch.arange(50_000, dtype=torch.float32)
    out = drop(x)
    kept = out != 0
    assert torch.allclose(out[kept], torch.full_like(out[kept], SCALE))
    (out * weights).sum().backward()
    torch.testing.assert_close(x.grad, torch.where(kept, weights * SCALE, 0.0))
    assert abs(out.mean().item() - 1.0) < 0.01  # unbiased: E[out] = x


def test_same_seed_same_mask_other_seed_other_mask():
    x = torch.randn(1000)
    drop = FastDropout(P).train()
    torch.manual_seed(7)
    first = drop(x)
    torch.manual_seed(7)
    assert torch.equal(drop(x), first)
    torch.manual_seed(8)
    assert not torch.equal(drop(x), first)


def test_eval_mode_and_p_zero_are_identity_and_bf16_stays_bf16():
    x = torch.randn(64, 32)
    assert FastDropout(P).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    out = FastDropout(P).train()(x.bfloat16())
    assert out.dtype == torch.bfloat16
    kept = out != 0
    torch.testing.assert_close(out[kept].float(), (x.bfloat16()[kept] * SCALE).float())


def test_face_vit_uses_the_fast_dropout_everywhere():
    model = build_model("vit_face_tiny", "cosface", 4)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(type(m) is FastDropout for m in dropouts)
    assert use_fast_dropout(nn.Sequential(nn.Dropout(0.3)))[0].p == 0.3


def test_add_dropped_equals_adding_the_dropout_output_with_the_same_mask_and_gradients():
    residual = torch.randn(6, 5, 40, requires_grad=True)
    x = torch.randn(6, 5, 40, requires_grad=True)
    upstream = torch.randn(6, 5, 40)
    drop = FastDropout(P).train()
    torch.manual_seed(3)
    fused = add_dropped(residual, x, drop)
    (fused * upstream).sum().backward()
    grads = residual.grad.clone(), x.grad.clone()
    residual.grad = x.grad = None
    torch.manual_seed(3)
    keep = keep_mask(x.shape, P)  # the draw the fused path makes
    torch.testing.assert_close(fused, residual + torch.where(keep, x * SCALE, 0.0), rtol=0, atol=0)
    torch.manual_seed(3)
    (((residual + drop(x)) * upstream).sum()).backward()
    assert torch.equal(grads[0], upstream)  # the residual's gradient passes through unchanged
    assert torch.equal(grads[1], torch.where(keep, upstream * SCALE, 0.0))
    assert torch.equal(grads[1], x.grad)


def test_add_dropped_outside_cpu_training_is_a_plain_sum():
    residual, x = torch.randn(3, 8), torch.randn(3, 8)
    for drop in (FastDropout(P).eval(), FastDropout(0.0).train(), nn.Identity()):
        assert torch.equal(add_dropped(residual, x, drop), residual + x)


def test_neighbouring_elements_are_dropped_independently():
    """Four elements share each 64-bit draw, yet every element must get its own 16 bits: at p = 0.5 the share of
    neighbouring pairs both dropped is p^2 = 0.25, where a mask value shared by neighbours gives up to p = 0.5.
    Checked along the row (lags 1-3 within a draw, 4 across draws) and down the column (lag 1000), for three seeds;
    the tolerance is 5 standard deviations of a share over 10^6 pairs (sd 5.6e-4, overlapping pairs included)."""
    for seed in range(3):
        torch.manual_seed(seed)
        dropped = (~keep_mask(torch.Size([1000, 1000]), 0.5)).flatten()
        for lag in (1, 2, 3, 4, 1000):
            both = (dropped[:-lag] & dropped[lag:]).float().mean().item()
            message = f"seed {seed}, lag {lag}: {both:.4f} of the pairs both dropped, not p^2 = 0.25"
            assert abs(both - 0.25) < 0.0028, message
