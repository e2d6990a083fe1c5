"""The validation split of a forgetting run is carved with the seed of the -r model's own split, so that model
selection never scores images the pre-trained model trained on, whatever class order --seed draws."""
import argparse

import torch

from data.subsets import train_val_split
from run_setup import validation_seed


def flags(seed=2024, val_ratio=0.1):
    return argparse.Namespace(seed=seed, val_ratio=val_ratio)


def test_the_pretraining_seed_carves_the_split():
    assert validation_seed(flags(seed=2024), {"seed": 1337, "val_ratio": 0.1}) == 1337


def test_a_forgetting_checkpoint_passes_on_the_split_it_was_selected_on():
    """A task checkpoint of a --seed 2024 run made from a seed-1337 model records validation_seed 1337."""
    assert validation_seed(flags(seed=7), {"seed": 2024, "validation_seed": 1337, "val_ratio": 0.1}) == 1337


def test_a_model_from_elsewhere_uses_the_run_seed():
    assert validation_seed(flags(seed=2024), {}) == 2024


def test_another_seed_would_have_validated_on_pretraining_images():
    """Why: with 40 images per class, seed 2024's 10 % split shares images with seed 1337's training split."""
    targets = torch.arange(8).repeat_interleave(40)
    pretrain_train, _ = train_val_split(targets, 0.1, 1337)
    _, val_2024 = train_val_split(targets, 0.1, 2024)
    _, val_kept = train_val_split(targets, 0.1, validation_seed(flags(seed=2024), {"seed": 1337}))
    assert len(set(val_2024.tolist()) & set(pretrain_train.tolist())) > 0
    assert not set(val_kept.tolist()) & set(pretrain_train.tolist())
