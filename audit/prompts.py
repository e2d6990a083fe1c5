"""Learned input tokens for the prompt-only attacker (shallow visual prompt tuning, Jia et al. 2022): with every weight
frozen it cannot teach the model anything new, so what it recovers was still in the weights."""
import contextlib

import torch
import torch.nn as nn


class PromptTokens(nn.Module):
    """``count`` tokens of width ``dim``, drawn from N(0, 0.02^2) with ``generator`` (reproducible)."""

    def __init__(self, count: int, dim: int, generator: torch.Generator):
        super().__init__()
        self.tokens = nn.Parameter(0.02 * torch.randn(1, count, dim, generator=generator))

    def insert(self, module: nn.Module, args: tuple) -> tuple:
        """Forward pre-hook: the first block's input (B, T, dim) becomes (B, T + count, dim), class token first."""
        x = args[0]
        prompts = self.tokens.to(x.dtype).expand(x.shape[0], -1, -1)
        return (torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1),) + tuple(args[1:])


@contextlib.contextmanager
def prompted(backbone: nn.Module, prompts: PromptTokens | None):
    """Within the block, ``backbone`` runs with ``prompts`` (if any) inserted by a hook; its weights are untouched."""
    handle = None if prompts is None else backbone.blocks[0].register_forward_pre_hook(prompts.insert)
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()
