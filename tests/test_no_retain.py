"""--no_retain: forgetting without retain data.

No remain training image is read (the remain loaders do not exist, and a spy on the image tensors sees none), the
remain cross-entropy is absent while GS-LoRA's forget hinge, group lasso and forget prototype hinge keep their values
(recomputed in float64 numpy), the results mark the setting, and the parser accepts or refuses each method as the
docs/undo-and-retain-free.md lists.
"""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_settings, tiny_tasks
from test_gs_lora import first_images, np_class_means, np_cross_entropies, np_kl, set_lora_factors

import baselines  # noqa: F401  (registers every baseline)
from config import parse_args
from data.folders import ImageTensors
from engine.forgetting import run_forgetting, task_loaders, task_subsets
from engine.method import METHODS, Method, StepInfo, TaskContext
from gs_lora import GSLoRA
from util.run_log import RunLog

# The documented decision (docs/undo-and-retain-free.md); every other method refuses.
RETAIN_FREE = ("gs_lora", "gs_lora_pp", "l2", "lirf")


def no_retain_context(data, task) -> TaskContext:
    s = dataclasses.replace(tiny_settings(Path("unused")), no_retain=True)
    remain_idx, forget_idx = task_subsets(data, task, s)
    return TaskContext(task, data.train, remain_idx, forget_idx, s.batch_size, s.device, s.amp, s.seed,
                       data.num_classes, s.optim.epochs, s.optim, no_retain=True)


def test_the_task_has_no_remain_images_and_no_remain_loaders(tiny_data):
    ctx = no_retain_context(tiny_data, tiny_tasks()[0])
    assert len(ctx.remain_idx) == 0 and len(ctx.forget_idx) > 0
    loaders = task_loaders(ctx)
    assert set(loaders) == {"forget", "forget_cycle"}
    pairs = list(Method(None).batches(ctx, loaders))
    assert len(pairs) == len(loaders["forget"]) and all(remain is None for remain, _ in pairs)


def test_gs_lora_pp_loss_without_remain_keeps_hinge_structure_and_prototype_terms(tiny_data, pretrained_model):
    """total = beta ReLU(BND - CE_f) + alpha sum_g ||theta_g|| + w_f ReLU(BND_pro - KL_f); no remain CE or pull."""
    beta, bound, alpha, w_f, bound_pro = 0.3, 40.0, 0.07, 0.05, 30.0
    method = GSLoRA(pretrained_model, rank=4, bound=bound, beta=beta, alpha=alpha, prototype=True,
                    pro_f_weight=w_f, pro_r_weight=0.5, bound_pro=bound_pro)
    ctx = no_retain_context(tiny_data, tiny_tasks()[0])
    method.begin_task(ctx)
    means = np_class_means(pretrained_model, ctx, ctx.forget_idx)  # the prototypes: before the factors change
    assert sorted(means) == sorted(ctx.task.forget)
    set_lora_factors(pretrained_model, seed=5)
    pretrained_model.eval()
    forget = first_images(ctx, ctx.forget_idx, n=10)
    with torch.no_grad():
        logits, emb = pretrained_model(*forget)
    ce = np_cross_entropies(logits, forget[1]).mean()
    kl = np_kl(emb.double().numpy(), np.stack([means[int(c)] for c in forget[1]]))
    norms = {}
    for name, p in pretrained_model.named_parameters():
        if "lora_" in name:
            block = name.split("blocks.")[1].split(".")[0]
            norms[block] = norms.get(block, 0.0) + float((p.detach().double().numpy() ** 2).sum())
    structure = alpha * sum(np.sqrt(v) for v in norms.values())
    assert 0 < bound - ce and 0 < bound_pro - kl  # both hinges active, so their values show
    losses = method.compute_loss(None, forget, StepInfo(0, 0, 0))
    assert "remain" not in losses and "prototype_remain" not in losses
    assert losses["forget"].item() == pytest.approx(beta * (bound - ce), rel=1e-5)
    assert losses["structure"].item() == pytest.approx(structure, rel=1e-5)
    assert losses["prototype_forget"].item() == pytest.approx(w_f * (bound_pro - kl), rel=1e-5)
    expected_total = beta * (bound - ce) + structure + w_f * (bound_pro - kl)
    assert losses["total"].item() == pytest.approx(expected_total, rel=1e-5)


class ReadSpy:
    """Records every index of ``images`` read through ``ImageTensors.batches`` and every training step's labels."""

    def __init__(self, monkeypatch, images: ImageTensors):
        self.read, self.steps = [], []
        batches, step = ImageTensors.batches, GSLoRA.training_step

        def spy_batches(data, chunks):
            if data is images:
                self.read.extend(int(i) for chunk in chunks for i in chunk)
            return batches(data, chunks)

        def spy_step(method, remain, forget, info):
            self.steps.append((info.task, remain, forget[1].tolist()))
            return step(method, remain, forget, info)

        monkeypatch.setattr(ImageTensors, "batches", spy_batches)
        monkeypatch.setattr(GSLoRA, "training_step", spy_step)


@pytest.mark.parametrize("selection", ["val", "last"])
def test_a_run_never_reads_a_remain_training_image(selection, tiny_data, pretrained_model, tmp_path, monkeypatch):
    """Classes 0-3 are remembered in both tasks: none of their training images is read (with selection 'val' their
    validation images are, for H; with 'last' not even those). Each step sees only the task's forget classes."""
    spy = ReadSpy(monkeypatch, tiny_data.train)
    tasks = tiny_tasks(2)
    method = GSLoRA(pretrained_model, rank=4, bound=15.0, beta=0.5, alpha=1e-3, prototype=True, pro_f_weight=0.1)
    settings = tiny_settings(tmp_path, selection=selection, steps_per_task=12, no_retain=True)
    results = run_forgetting(method, tiny_data, tasks, settings, RunLog(None))
    always_remembered = set(tasks[0].remain) & set(tasks[1].remain)
    allowed = set(tiny_data.val_idx.tolist()) if selection == "val" else set()
    labels = tiny_data.train.targets
    assert not [i for i in spy.read if int(labels[i]) in always_remembered and i not in allowed]
    assert len(spy.steps) == 24
    for task, remain, forget_labels in spy.steps:
        assert remain is None and set(forget_labels) <= set(tasks[task].forget)
    assert results["no_retain"] is True
    assert [t["train_images"]["remain"] for t in results["tasks"]] == [0, 0]


@pytest.mark.parametrize("name", METHODS.names())
def test_the_parser_accepts_the_retain_free_methods_and_refuses_the_others(name, capsys):
    argv = ["--num_tasks", "2", "--method", name, "--no_retain"]
    if name not in RETAIN_FREE:
        with pytest.raises(SystemExit) as exit_info:
            parse_args("x", argv=argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1
        assert err.startswith(f"error: --method {name} cannot run with --no_retain: ")
    else:
        assert parse_args("x", argv=argv).no_retain


@pytest.mark.parametrize("argv, needle", [(["--method", "l2", "--replay"], "drop --replay"),
                                          (["--method", "gs_lora_pp", "--pro_r_weight", "0.1"], "--pro_r_weight")])
def test_remain_based_options_of_retain_free_methods_are_refused(argv, needle, capsys):
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--num_tasks", "2", "--no_retain"] + argv)
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("name", RETAIN_FREE)
def test_retain_free_methods_forget_without_remain_data(name, tiny_data, pretrained_model, tmp_path):
    flags = [f for f in METHODS.get(name).presets["smoke"].split() if f != "--replay"]
    args = parse_args("x", argv=["--num_tasks", "2", "--method", name, "--no_retain"] + flags)
    method = METHODS.get(name).from_args(pretrained_model, args)
    settings = tiny_settings(tmp_path, lr=args.lr, steps_per_task=48, no_retain=True)
    first, second = run_forgetting(method, tiny_data, tiny_tasks(2), settings, RunLog(None))["tasks"]
    assert first["acc_f"] < first["acc_f_before"] - 20, first
    assert first["train_images"]["remain"] == 0 and first["optimizer_steps"] == 48
