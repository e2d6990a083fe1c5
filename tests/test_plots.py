"""The three plots are written as readable PNGs from a table's runs; the heat map needs GS-LoRA's group norms."""
from PIL import Image

from util.plots import plot_accuracy, plot_cost, plot_group_norms


def run(method: str, ratio: float, norms: bool) -> dict:
    plan = [{"task": i, "remain": list(range(80 - 20 * i)), "forget": list(range(20)), "old": [], "missing": []}
            for i in range(4)]
    tasks = [{"task": i, "h_mean": 60.0 + i, "acc_r": 62.0, "acc_f": 1.0 + i, "acc_o": None, "acc_m": None,
              "trainable_ratio": ratio, "optimizer_steps": 240, "wall_time_s": 30.0, "peak_memory_mb": 900.0,
              **({"group_norms": [0.5 * b + i for b in range(6)]} if norms else {})} for i in range(4)]
    return {"method": method, "plan": plan, "tasks": tasks,
            "pretrained": {"original": [{"acc_r": 63.0, "acc_f": 65.0, "acc_o": None, "acc_m": None}] * 4}}


def test_three_plots_are_written_at_a_legible_size(tmp_path):
    runs = [("GS-LoRA", run("gs_lora", 4.24, True)), ("EWC", run("ewc", 98.45, False))]
    paths = [plot_group_norms(runs, tmp_path / "group_norms.png"), plot_accuracy(runs, tmp_path / "accuracy.png"),
             plot_cost(runs, tmp_path / "cost.png")]
    for path in paths:
        width, height = Image.open(path).size
        assert width >= 400 and height >= 250, (path, width, height)


def test_no_heat_map_without_gs_lora(tmp_path):
    assert plot_group_norms([("EWC", run("ewc", 98.45, False))], tmp_path / "g.png") is None
    assert not (tmp_path / "g.png").exists()
