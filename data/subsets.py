"""Which training images a run may use: the validation split, data-ratio and few-shot subsets. Each draw has its own
generator seeded from the run seed and a purpose tag, so subsets do not depend on model construction's random draws."""
import zlib

import torch

from util.errors import UserError


def seeded_generator(seed: int, *tags) -> torch.Generator:
    """A generator whose seed mixes ``seed`` with the tags (strings or ints), stable across runs and platforms."""
    return torch.Generator().manual_seed(zlib.crc32(repr((seed,) + tags).encode()))


def train_val_split(targets: torch.Tensor, val_ratio: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, holds out ``round(count * val_ratio)`` images (at least one when the ratio is positive)."""
    gen = seeded_generator(seed, "validation")
    train, val = [], []
    for c in torch.unique(targets).tolist():
        idx = torch.nonzero(targets == c, as_tuple=True)[0]
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = max(1, round(len(idx) * val_ratio)) if val_ratio > 0 else 0
        if n_val >= len(idx):
            raise UserError(f"class {c} has {len(idx)} training images, too few for --val_ratio {val_ratio}")
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def ratio_subset(indices: torch.Tensor, ratio: float, seed: int, *tags) -> torch.Tensor:
    """A random ``int(len * ratio)`` of ``indices`` (not stratified, as the original), at least one."""
    if not 0 < ratio <= 1:
        raise UserError(f"--data_ratio must be in (0, 1], got {ratio}")
    count = max(1, int(len(indices) * ratio))
    return indices[torch.randperm(len(indices), generator=seeded_generator(seed, "ratio", *tags))[:count]]


def few_shot_subset(indices: torch.Tensor, targets: torch.Tensor, shots: int, seed: int, *tags) -> torch.Tensor:
    """``shots`` random images of every class present in ``indices``."""
    gen = seeded_generator(seed, "few_shot", *tags)
    labels = targets[indices]
    chosen = []
    for c in torch.unique(labels).tolist():
        idx = indices[labels == c]
        if len(idx) < shots:
            raise UserError(f"class {c} has {len(idx)} training images, fewer than --few_shot_num {shots}")
        chosen.append(idx[torch.randperm(len(idx), generator=gen)[:shots]])
    return torch.cat(chosen)
