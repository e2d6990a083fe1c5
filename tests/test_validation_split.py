"""The validation split of a forgetting run is carved with the seed of the -r model's own split, so that model
selection never scores images the pre-trained model trained on, whatever class order --seed draws."""
import argparse

import torch
from conftest import write_image_folder

from data.subsets import train_val_split
from model import build_model
from run_setup import flags_as_json, model_and_data_from_args, validation_seed
from train_own_forget_cl import forgetting_args
from util.checkpoint import save_checkpoint


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


def test_a_forgetting_run_from_a_seed_11_model_with_seed_22_validates_on_the_models_held_out_images(tmp_path):
    """Through the entry point's own path (train_own_forget_cl.py's flags, run_setup.model_and_data_from_args): -r a
    model pre-trained with --seed 11 and --val_ratio 0.25, a forgetting run with --seed 22. Its validation split is
    the one pre-training held out (seed 11), and config.json records validation_seed 11."""
    write_image_folder(tmp_path / "data", num_classes=4, train_per_class=12, test_per_class=2)
    model_args = dict(net="vit_face_tiny", head="cosface", num_classes=4, depth=2, image_size=16)
    save_checkpoint(tmp_path / "pre.pth", model=build_model(**model_args).state_dict(), model_args=model_args,
                    config={"seed": 11, "val_ratio": 0.25})
    args = forgetting_args(argv=["-d", "imagefolder", "--data_root", str(tmp_path / "data"), "-r",
                                 str(tmp_path / "pre.pth"), "--seed", "22", "--val_ratio", "0.25",
                                 "--num_workers", "0"])
    _, _, data = model_and_data_from_args(args)
    targets = torch.arange(4).repeat_interleave(12)  # class folders in order, 12 training images each
    assert torch.equal(data.train.targets, targets)
    pretrain_train, pretrain_val = train_val_split(targets, 0.25, 11)  # what pre-training with --seed 11 carved
    assert not torch.equal(train_val_split(targets, 0.25, 22)[1], pretrain_val)  # the seeds carve different splits
    assert data.val_idx.tolist() == pretrain_val.tolist()
    assert data.train_idx.tolist() == pretrain_train.tolist()
    recorded = flags_as_json(args)  # what begin_run writes to config.json
    assert (recorded["validation_seed"], recorded["seed"]) == (11, 22)
