"""The result table: settings named as in the papers, a Pre-train row, one row per method with the cost columns,
single-step runs of one method gathered into one row, and every H cell checked against Acc_r and the drop in Acc_f."""
from pathlib import Path

import pytest

from util.table import H_TOLERANCE, build_audit_table, build_table, distinct_row_names, markdown_table, recompute_h


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
    assert recompute_h(4.0, 10.0, 14.5) == 0.0  # Acc_f rose: nothing forgotten (the raw formula gives 72)
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


def audited(member_rate: float, recovery: float, oracle_recovery=None) -> dict:
    audit = {"membership": {"classifier": {"member_rate": member_rate}, "loss_threshold": {"member_rate": 2.0}},
             "probe": {"acc_f": 40.0, "acc_r": 60.0},
             "verification": {"forget": {"tar": 5.0}, "retain": {"tar": None}},
             "relearn": {"before": 0.5, "model": {"25": recovery + 5, "5": recovery}, "prompt": {"5": 1.0, "25": 1.5}}}
    if oracle_recovery is not None:
        audit["oracle"] = {"membership": {"classifier": {"member_rate": 3.0}}}
        audit["gap"] = {"model": {"5": recovery - oracle_recovery}, "prompt": {"5": 0.25}}
    return audit


def test_audit_table_has_a_row_per_audited_task_and_only_the_columns_with_values():
    plain = continual()
    assert build_audit_table([("GS-LoRA", plain)]) is None
    ours = continual()
    ours["tasks"][0]["audit"] = audited(0.5, 60.0, oracle_recovery=20.0)
    ours["tasks"][1]["audit"] = audited(1.5, 30.0)
    header, first, second = build_audit_table([("GS-LoRA", ours), ("EWC", plain)]).rows
    assert header == ["Method", "Setting", "MIA %", "MIA oracle %", "Loss MIA %", "kNN Acc_f", "kNN Acc_r", "TAR_f",
                      "Acc_f", "Relearn k=5", "Relearn k=25", "Prompt k=5", "Prompt k=25", "Relearn gap k=5",
                      "Prompt gap k=5"]  # k in numeric order; no TAR_r nor oracle kNN/TAR values anywhere
    assert first == ["GS-LoRA", "100-20", "0.50", "3.00", "2.00", "40.00", "60.00", "5.00", "0.50", "60.00", "65.00",
                     "1.00", "1.50", "40.00", "0.25"]
    assert second[:4] == ["GS-LoRA", "80-20", "1.50", "-"] and second[-2:] == ["-", "-"]


def test_runs_of_one_name_over_the_same_columns_are_named_by_the_folder_part_that_differs():
    continual = {"plan": [plan(0, 80, 20), plan(1, 60, 20)], "tasks": [task(0, 60, 1, 45), task(1, 61, 1, 45)]}
    single = {"plan": [plan(0, 95, 5)], "tasks": [task(0, 60, 1, 45)]}
    runs = [("gs_lora", Path("/r/a/x/gs_lora"), continual), ("gs_lora", Path("/r/b/x/gs_lora"), continual),
            ("gs_lora", Path("/r/b/y/gs_lora"), single), ("ewc", Path("/r/a/x/ewc"), continual)]
    # The 100-5 run fills other columns: it keeps the shared name. /r/a/x and /r/b/x first differ at 'a' / 'b'.
    assert distinct_row_names(runs) == ["gs_lora (a)", "gs_lora (b)", "gs_lora", "ewc"]
    # A third run of the same columns: /r/b/x differs from /r/a/x at 'b' but shares 'b' with /r/b/z, and
    # shares 'x' with /r/a/x; no single part tells it apart from both, so the whole path does.
    third = runs[:2] + [("gs_lora", Path("/r/b/z/gs_lora"), continual)]
    assert distinct_row_names(third) == ["gs_lora (a)", "gs_lora (/r/b/x/gs_lora)", "gs_lora (z)"]


def named(results: dict, names: list) -> dict:
    """``results`` as a run made by names (--forget_classes or --plan) whose tasks forgot ``names``."""
    for entry, forgotten in zip(results["plan"], names):
        entry["forget"], entry["forget_names"] = list(range(len(forgotten))), forgotten
    return {**results, "config": {"named_tasks": names}}


def test_a_run_by_names_labels_its_small_tasks_by_name_and_lists_the_others_under_the_table():
    many = [f"{i:07d}" for i in range(20)]
    results = named(continual(), [["0000045", "0000099"], many])
    results["plan"][1]["remain"] = list(range(78))
    table = build_table([("GS-LoRA", results)])
    assert table.rows[0][1] == "82-2 (0000045, 0000099) H" and table.rows[0][4] == "98-20 H"
    assert table.notes == [f"98-20 forgets {', '.join(many)}"]
    assert f"* 98-20 forgets {', '.join(many)}" in markdown_table(table)
    audit = {"probe": {"acc_f": 3.0}}
    results["tasks"][0]["audit"] = audit
    assert build_audit_table([("GS-LoRA", results)]).rows[1][:2] == ["GS-LoRA", "82-2 (0000045, 0000099)"]
    by_order = continual()  # a run of the random order keeps the papers' labels, names or not
    by_order["plan"][0]["forget_names"] = ["a"] * 20
    assert build_table([("GS-LoRA", by_order)]).rows[0][1] == "100-20 H"
