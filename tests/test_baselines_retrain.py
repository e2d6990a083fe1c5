"""Retrain: reproducible re-initialisation of the whole model, before-values from the pre-trained model, a run."""
import copy

import torch

import config
from baselines.retrain import Retrain, reinitialise
from engine.method import METHODS


def test_reinitialise_redraws_everything_reproducibly(pretrained_model):
    first, second = copy.deepcopy(pretrained_model), copy.deepcopy(pretrained_model)
    rng = torch.get_rng_state()
    reinitialise(first, seed=3)
    reinitialise(second, seed=3)
    assert torch.equal(rng, torch.get_rng_state())  # the global generator is untouched
    old = pretrained_model.state_dict()
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
        if value.dtype.is_floating_point and value.numel() > 1 and value.std() > 0:
            assert not torch.equal(value, old[name]), name  # head, class token and position embedding included
    reinitialise(second, seed=4)
    assert not torch.equal(first.head.weight, second.head.weight)


def test_two_task_run_before_values_come_from_the_pretrained_model(run_tiny, pretrained_model):
    total = sum(p.numel() for p in pretrained_model.parameters())
    results = run_tiny("retrain", seed=0, settings_kw={"epochs": 10, "lr": 1e-2})
    first = results["tasks"][0]
    pretrained = results["pretrained"]["original"][0]
    assert first["acc_f_before"] == pretrained["acc_f"] and first["acc_r_before"] == pretrained["acc_r"]
    assert first["acc_f"] < first["acc_f_before"] - 30 and first["acc_r"] > 50, first  # learnt from scratch
    for task in results["tasks"]:
        assert task["trainable_params"] == total and task["trainable_ratio"] == 100.0


def test_original_switch_maps_to_retrain(pretrained_model):
    args = config.parse_args("x", argv=["--retrain", "--seed", "7", "--warmup-epochs", "5"])
    method = METHODS.get(args.method).from_args(pretrained_model, args)
    assert args.method == "retrain" and isinstance(method, Retrain) and method.seed == 7
