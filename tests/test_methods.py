"""Every registered method through two tiny CPU tasks with its own 'smoke' flags, parsed by the real parser and
built by its ``from_args``: it finishes (the engine stops on a non-finite loss), reports what it trains, forgets
its classes and keeps the remembered ones. A new method is found automatically and only needs its presets."""
import pytest
from conftest import tiny_settings, tiny_tasks

import baselines  # noqa: F401  (registers every baseline)
import gs_lora  # noqa: F401  (registers GS-LoRA and GS-LoRA++)
from config import parse_args
from engine.forgetting import run_forgetting
from engine.method import METHODS
from util.run_log import RunLog

PRESETS = ("paper", "cpu", "smoke")


@pytest.mark.parametrize("method", METHODS.unique(), ids=lambda m: m.name)
def test_every_method_defines_its_own_presets_that_parse(method):
    assert "presets" in vars(method), f"{method.__name__} inherits its presets; give it its own"
    assert METHODS.get(method.name) is method
    for preset in PRESETS:
        args = parse_args("x", argv=["--num_tasks", "4", "--method", method.name] + method.presets[preset].split())
        assert args.method == method.name


@pytest.mark.parametrize("name", METHODS.names())
def test_method_runs_two_tasks_forgets_and_remembers(name, tiny_data, pretrained_model, tmp_path):
    args = parse_args("x", argv=["--num_tasks", "2", "--method", name] + METHODS.get(name).presets["smoke"].split())
    method = METHODS.get(name).from_args(pretrained_model, args)
    settings = tiny_settings(tmp_path, epochs=args.epochs, lr=args.lr, selection=args.selection)
    first, second = run_forgetting(method, tiny_data, tiny_tasks(2), settings, RunLog(None))["tasks"]
    assert first["acc_f"] < first["acc_f_before"] - 20, first
    assert second["acc_f"] <= second["acc_f_before"], second
    # Forgetting must not come from wiping the model: the remembered classes stay far above chance (12.5 %).
    for task in (first, second):
        assert task["acc_r"] >= 50 and task["acc_r"] >= task["acc_r_before"] - 35, task
    assert second["acc_o"] is not None and first["acc_o"] is None
    total = sum(p.numel() for p in pretrained_model.parameters())
    assert 0 < first["trainable_params"] <= total
    assert first["trainable_ratio"] == pytest.approx(100 * first["trainable_params"] / total)
    assert first["optimizer_steps"] > 0
