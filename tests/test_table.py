"""The result table: settings named as in the papers, a Pre-train row, one row per method with the cost columns,
single-step runs of one method gathered into one row, and every H cell checked against Acc_r and the drop in Acc_f."""
import pytest

from util.table import H_TOLERANCE, build_table, markdown_table, recompute_h


def plan(index: int, remain: int, forget: int, missing: int = 0) -> dict:
    return {"task": index, "remain": list(range(remain)), "forget": list(range(forget)), "old": [],
            "missing": list(range(missing))}


def task(index: int, acc_r: float, acc_f: float, before: float, steps: int = 240, wall: float = 10.4,
         h=None) -> dict:
    metrics = {"acc_r": acc_r, "acc_f": acc_f, "acc_f_before": before, "acc_o": None if index == 0 else 2.0,
               "acc_m": None, "h_mean": recompute_h(acc_r, before, acc_f) if h is None else h}
    return {"task": index, **metrics, "plain": metrics, "trainable_ratio": 4.24, "optimizer_steps": steps,
            "wall_time_s": wall, "peak_memory_mb": 900.0 + index}


def continual(h_first=None) -> dict:
    return {"plan": [plan(0, 80, 20), plan(1, 60, 20)],
            "tasks": [task(0, 60.0, 1.5, 65.0, 240, 10.4, h=h_first), task(1, 62.0, 0.5, 68.0, 180, 5.2)],
            "pretrained": {"original": [{"acc_r": 62.0, "acc_f": 65.0, "acc_o": None, "acc_m": None},
                                        {"acc_r": 61.0, "acc_f": 68.0, "acc_o": 65.0, "acc_m": None}]}}


def test_h_is_twice_acc_r_times_drop_over_their_sum():
    assert recompute_h(60.0, 65.0, 1.5) == pytest.approx(2 * 60.0 * 63.5 / 123.5)
    assert recompute_h(0.0, 10.0, 10.0) == 0.0
    assert recompute_h(None, 10.0, 1.0) is None


def test_rows_hold_settings_metrics_and_cost_with_steps_summed_over_tasks():
    table = build_table([("GS-LoRA", continual())])
    header, pretrain, row = table.rows
    assert header[:4] == ["Method", "100-20 H", "100-20 Acc_r", "100-20 Acc_f"]
    assert header[4:8] == ["80-20 H", "80-20 Acc_r", "80-20 Acc_f", "80-20 Acc_o"]
    assert header[-4:] == ["Tunable %", "Steps", "Time (s)", "Peak MB"]
    assert pretrain[:4] == ["Pre-train", "-", "62.00", "65.00"]
    assert row[:4] == ["GS-LoRA", f"{2 * 60 * 63.5 / 123.5:.2f}", "60.00", "1.50"]
    assert row[-4:] == ["4.24", "420", "16", "901"]
    assert table.flags == []


def test_a_wrong_h_is_flagged_and_listed_under_the_markdown_table():
    table = build_table([("GS-LoRA", continual(h_first=50.0))])
    assert [(f.row, f.setting, f.printed) for f in table.flags] == [("GS-LoRA", "100-20", 50.0)]
    assert table.rows[2][1] == "50.00*"
    assert "GS-LoRA 100-20: H printed 50.00" in markdown_table(table)
    close = build_table([("GS-LoRA", continual(h_first=recompute_h(60.0, 65.0, 1.5) + H_TOLERANCE / 2))])
    assert close.flags == []


def test_single_step_runs_of_one_method_share_a_row_and_missing_classes_count_as_known():
    runs = [(name, {"plan": [plan(0, 100 - forget - 5, forget, missing=5)],
                    "tasks": [{**task(0, 70.0, 0.0, 72.0), "acc_m": 40.0}]})
            for name in ("EWC", "LwF") for forget in (5, 10)]
    header, _, ewc, lwf = build_table(runs).rows
    assert header[1:5] == ["100-5 H", "100-5 Acc_r", "100-5 Acc_f", "100-5 Acc_m"]
    assert header[5] == "100-10 H"
    assert ewc[0] == "EWC" and lwf[0] == "LwF" and ewc[4] == "40.00"
    assert ewc[-3] == "480"  # steps of both single-step runs
