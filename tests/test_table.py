"""The result table: a Pre-train row, one row per method, per-task metrics and the cost columns."""
from util.table import table_rows


def task(index: int, steps: int, wall: float) -> dict:
    metrics = {"h_mean": 50.0 + index, "acc_r": 60.0, "acc_f": 1.5, "acc_o": None if index == 0 else 2.0,
               "acc_m": None}
    return {**metrics, "plain": metrics, "trainable_ratio": 4.24, "optimizer_steps": steps, "wall_time_s": wall,
            "peak_memory_mb": 900.0 + index}


def test_rows_hold_metrics_and_cost_with_steps_summed_over_tasks():
    runs = {"gs_lora": {"tasks": [task(0, 240, 10.4), task(1, 180, 5.2)],
                        "pretrained": {"original": [{"acc_r": 62.0, "acc_f": 65.0, "acc_o": None, "acc_m": None},
                                                    {"acc_r": 61.0, "acc_f": 68.0, "acc_o": 65.0, "acc_m": None}]}}}
    header, pretrain, row = table_rows(runs)
    assert header[:5] == ["Method", "T0 H", "T0 Acc_r", "T0 Acc_f", "T0 Acc_o"]
    assert header[-4:] == ["Tunable %", "Steps", "Time (s)", "Peak MB"]
    assert pretrain[:5] == ["Pre-train", "-", "62.00", "65.00", "-"]
    assert row[:5] == ["gs_lora", "50.00", "60.00", "1.50", "-"]
    assert row[-4:] == ["4.24", "420", "16", "901"]
