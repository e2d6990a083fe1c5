"""Result tables in the layout of the papers' Table 3: per task H, Acc_r, Acc_f, Acc_o (and Acc_m), plus cost
(tunable parameters, optimizer steps over all tasks, wall time, peak memory)."""
import csv
import io
from typing import Dict, List, Optional

METRICS = (("h_mean", "H"), ("acc_r", "Acc_r"), ("acc_f", "Acc_f"), ("acc_o", "Acc_o"), ("acc_m", "Acc_m"))


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _columns(runs: Dict[str, Dict]) -> List[str]:
    """Metric columns that hold a value for at least one method and task."""
    return [key for key, _ in METRICS
            if any(t.get(key) is not None for r in runs.values() for t in r["tasks"])]


def table_rows(runs: Dict[str, Dict], convention: str = "original") -> List[List[str]]:
    """Header plus one row per method: a 'Pre-train' row of before-values first, then each method."""
    keys = _columns(runs)
    num_tasks = max(len(r["tasks"]) for r in runs.values())
    header = ["Method"]
    for i in range(num_tasks):
        header += [f"T{i} {dict(METRICS)[k]}" for k in keys]
    header += ["Tunable %", "Steps", "Time (s)", "Peak MB"]
    pretrained = next(iter(runs.values())).get("pretrained", {}).get(convention, [])[:num_tasks]
    rows = [header, ["Pre-train"] + [_fmt(t.get(k)) for t in pretrained for k in keys]]
    rows[1] += [""] * (len(header) - len(rows[1]))
    for name, run in runs.items():
        cells = [name]
        for t in run["tasks"]:
            cells += [_fmt(_pick(t, k, convention)) for k in keys]
        cells += [""] * (len(header) - 4 - len(cells))
        tasks = run["tasks"]
        cells += [_fmt(tasks[0]["trainable_ratio"]) if tasks else "-",
                  str(sum(t["optimizer_steps"] for t in tasks)),
                  f"{sum(t['wall_time_s'] for t in tasks):.0f}",
                  f"{max(t['peak_memory_mb'] for t in tasks):.0f}" if tasks else "-"]
        rows.append(cells)
    return rows


def _pick(task: Dict, key: str, convention: str) -> Optional[float]:
    return task.get(key) if convention == "original" else task["plain"].get(key)


def format_table(runs: Dict[str, Dict], convention: str = "original") -> str:
    """A fixed-width text table for the terminal."""
    rows = table_rows(runs, convention)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def markdown_table(runs: Dict[str, Dict], convention: str = "original") -> str:
    rows = table_rows(runs, convention)
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]]) + "\n"


def csv_table(runs: Dict[str, Dict], convention: str = "original") -> str:
    out = io.StringIO()
    csv.writer(out).writerows(table_rows(runs, convention))
    return out.getvalue()
