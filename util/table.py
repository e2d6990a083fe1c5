"""Result tables in the papers' layout (T-PAMI Tables 2-5), with an independent check of every H cell.

Columns are settings "a-b" (a classes known before the step, b of them forgotten; a run made by names adds the names
of small tasks); runs named alike share a row. A printed H more than ``H_TOLERANCE`` points off ``recompute_h``'s is
flagged with ``*`` and listed under the Markdown table."""
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

METRICS = (("h_mean", "H"), ("acc_r", "Acc_r"), ("acc_f", "Acc_f"), ("acc_o", "Acc_o"), ("acc_m", "Acc_m"))
COST_COLUMNS = ("Tunable %", "Steps", "Time (s)", "Peak MB")
COST_KEYS = ("trainable_ratio", "optimizer_steps", "wall_time_s", "peak_memory_mb")
# Published cells carry two decimals, so H recomputed from rounded Acc_r and Acc_f may be off by a few hundredths.
H_TOLERANCE = 0.06
# The papers' row names; a method missing here is shown by its registry name.
DISPLAY_NAMES = {"gs_lora": "GS-LoRA", "gs_lora_pp": "GS-LoRA++", "l2": "L2", "ewc": "EWC", "mas": "MAS",
                 "lwf": "LwF", "der": "DER", "der_pp": "DER++", "fdr": "FDR", "scrub": "SCRUB", "scrub_s": "SCRUB-S",
                 "lirf": "LIRF", "retrain": "Retrain", "oracle": "Oracle"}

# The audit table (audit/, docs/audits.md): (header, path in a task's "audit" entry), then per relearn size k the
# recovered Acc_f of both attack budgets and their gaps to the oracle (header + " k=K", path + (K,)).
AUDIT_COLUMNS = (("MIA %", ("membership", "classifier", "member_rate")),
                 ("MIA oracle %", ("oracle", "membership", "classifier", "member_rate")),
                 ("Loss MIA %", ("membership", "loss_threshold", "member_rate")),
                 ("Loss MIA oracle %", ("oracle", "membership", "loss_threshold", "member_rate")),
                 ("kNN Acc_f", ("probe", "acc_f")), ("kNN Acc_f oracle", ("oracle", "probe", "acc_f")),
                 ("kNN Acc_r", ("probe", "acc_r")), ("TAR_f", ("verification", "forget", "tar")),
                 ("TAR_f oracle", ("oracle", "verification", "forget", "tar")),
                 ("TAR_r", ("verification", "retain", "tar")), ("Acc_f", ("relearn", "before")),
                 ("MIA gap", ("gap", "mia")), ("kNN Acc_f gap", ("gap", "knn_acc_f")), ("TAR_f gap", ("gap", "tar_f")))
# A gap (ours minus the oracle's) at most this large, in points, counts as reaching the oracle on that audit.
NEAR_ORACLE = 5.0
# A task of a run made by names is labelled by its names up to this many classes; more are listed under the table.
NAMES_IN_LABEL = 3
RELEARN_COLUMNS = (("Relearn", ("relearn", "model")), ("Prompt", ("relearn", "prompt")),
                   ("Relearn gap", ("gap", "model")), ("Prompt gap", ("gap", "prompt")))

Run = tuple[str, dict]  # (row name, the content of a results.json)
Runs = Sequence[Run] | dict[str, dict]  # a dict maps row names to results


@dataclass
class HFlag:
    """One H cell that disagrees with its recomputed value (accuracy points)."""
    row: str
    setting: str
    printed: float
    recomputed: float


@dataclass
class Table:
    """Rows of display strings (``rows[0]`` the header), the H cells flagged with ``*`` and notes under the table."""
    rows: list[list[str]]
    flags: list[HFlag] = field(default_factory=list)
    convention: str = "original"
    notes: list[str] = field(default_factory=list)


def recompute_h(acc_r: float | None, acc_f_before: float | None, acc_f: float | None) -> float | None:
    """H = 2 Acc_r drop / (Acc_r + drop), drop = Acc_f before - after, in percent (None for a missing input); apart
    from ``util.metrics`` on purpose, so that the check also catches a wrong formula in the code that wrote results."""
    if acc_r is None or acc_f_before is None or acc_f is None:
        return None
    drop = acc_f_before - acc_f
    # Acc_f did not fall: nothing forgotten, H = 0 (the fixed rule; the original let H go negative)
    return 0.0 if drop <= 0 else 2 * acc_r * drop / (acc_r + drop)


def setting_label(plan: dict | None, index: int, named: bool = False) -> str:
    """'a-b' (classes known before the task - forgotten), the names when ``named`` and few; 'T<i>' without a plan."""
    if not plan:
        return f"T{index}"
    known = len(plan["remain"]) + len(plan.get("missing") or []) + len(plan["forget"])
    names = plan.get("forget_names") if named else None
    label = f"{known}-{len(plan['forget'])}"
    return f"{label} ({', '.join(names)})" if names and len(names) <= NAMES_IN_LABEL else label


def made_by_names(results: dict) -> bool:
    return bool((results.get("config") or {}).get("named_tasks"))


def task_labels(results: dict) -> dict[int, str]:
    """The setting label of each finished task of a run, by task index."""
    plan, named = {p.get("task"): p for p in results.get("plan", [])}, made_by_names(results)
    return {t["task"]: setting_label(plan.get(t["task"]), t["task"], named) for t in results.get("tasks", [])}


def name_notes(runs: Runs) -> list[str]:
    """'<setting> forgets <names>' for each task of a run made by names whose label could not hold its names."""
    plans = [plan for _, results in _pairs(runs) if made_by_names(results) for plan in results.get("plan", [])]
    return list(dict.fromkeys(f"{setting_label(plan, plan['task'])} forgets {', '.join(plan['forget_names'])}"
                              for plan in plans if len(plan.get("forget_names") or []) > NAMES_IN_LABEL))


def _pairs(runs: Runs) -> Sequence[Run]:
    return list(runs.items()) if isinstance(runs, dict) else runs


def distinct_row_names(runs: Sequence[tuple[str, Path, dict]]) -> list[str]:
    """Row names of (name, folder, results): runs of a name sharing a column get ``name (first differing folder)``."""
    names, columns = [], [set(task_labels(results).values()) for _, _, results in runs]
    for (name, folder, _), mine in zip(runs, columns):
        rivals = [f for (other, f, _), theirs in zip(runs, columns) if other == name and f != folder and theirs & mine]
        where = next((part for depth, part in enumerate(folder.parts)
                      if all(len(f.parts) <= depth or f.parts[depth] != part for f in rivals)), str(folder))
        names.append(f"{name} ({where})" if rivals else name)
    return names


def fmt_cell(value: float | None) -> str:
    """A number as every table shows it: two decimals, '-' for a missing value."""
    return "-" if value is None else f"{value:.2f}"


def collect(runs: Runs, convention: str = "original"):
    """(settings in first-seen order, {row: {setting: task}}, {setting: pre-trained accuracies}, {row: [tasks]})."""
    settings, cells, pretrained, tasks_of = {}, {}, {}, {}
    for name, results in _pairs(runs):
        labels, row = task_labels(results), cells.setdefault(name, {})
        tasks_of.setdefault(name, []).extend(results["tasks"])
        before = results.get("pretrained", {}).get(convention, [])
        for task in results["tasks"]:
            label = labels[task["task"]]
            settings.setdefault(label)  # a dict keeps the settings in first-seen order
            row[label] = task if convention == "original" else task.get("plain", {})
            if task["task"] < len(before):
                pretrained.setdefault(label, before[task["task"]])
    return list(settings), cells, pretrained, tasks_of


def present(tasks: Iterable[dict], key: str) -> list:
    """The values of ``key`` in the tasks that recorded it (old runs lack the cost fields)."""
    return [t[key] for t in tasks if t.get(key) is not None]


def _cost(tasks: list[dict]) -> list[str]:
    ratio, steps, wall, peak = (present(tasks, k) for k in COST_KEYS)
    return [fmt_cell(max(ratio)) if ratio else "-", str(sum(steps)) if steps else "-",
            f"{sum(wall):.0f}" if wall else "-", f"{max(peak):.0f}" if peak else "-"]


def build_table(runs: Sequence[Run], convention: str = "original") -> Table:
    """The table of some runs in one accuracy convention ('original' or 'plain'), H cells checked."""
    settings, cells, pretrained, tasks_of = collect(runs, convention)
    keys = {s: [k for k, _ in METRICS
                if any(row.get(s, {}).get(k) is not None for row in cells.values())
                or (k != "h_mean" and pretrained.get(s, {}).get(k) is not None)] for s in settings}
    header = ["Method"] + [f"{s} {dict(METRICS)[k]}" for s in settings for k in keys[s]] + list(COST_COLUMNS)
    pre = ["Pre-train"] + [fmt_cell(pretrained.get(s, {}).get(k)) for s in settings for k in keys[s]]
    table = Table([header, pre + [""] * len(COST_COLUMNS)], convention=convention, notes=name_notes(runs))
    for name, row in cells.items():
        line = [name]
        for s in settings:
            task = row.get(s, {})
            line += [fmt_cell(task.get(key)) for key in keys[s]]
            before = task.get("acc_f_before")
            before = pretrained.get(s, {}).get("acc_f") if before is None else before
            fresh = recompute_h(task.get("acc_r"), before, task.get("acc_f"))
            if task.get("h_mean") is not None and fresh is not None and abs(fresh - task["h_mean"]) > H_TOLERANCE:
                table.flags.append(HFlag(name, s, task["h_mean"], fresh))
                line[-len(keys[s])] += "*"  # H, the setting's first column
        table.rows.append(line + _cost(tasks_of[name]))
    return table


def dig(tree, path: tuple[str, ...]):
    """The value at ``path`` in nested dicts, or None where the path ends early."""
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _audit_columns(audits: list[dict]) -> list[tuple[str, tuple[str, ...]]]:
    """The audit columns that hold a value in some row, the relearn sizes k in increasing order."""
    ks = sorted({int(k) for a in audits for k in (dig(a, ("relearn", "model")) or {})})
    columns = list(AUDIT_COLUMNS) + [(f"{label} k={k}", path + (str(k),)) for label, path in RELEARN_COLUMNS
                                     for k in ks]
    return [c for c in columns if any(dig(a, c[1]) is not None for a in audits)]


def build_audit_table(runs: Runs) -> Table | None:
    """One row per run and setting with an audit, one column per audit number (percent, plain); None without audits."""
    cells = []
    for name, results in _pairs(runs):
        labels = task_labels(results)
        cells += [(name, labels[t["task"]], t["audit"]) for t in results["tasks"] if t.get("audit")]
    if not cells:
        return None
    columns = _audit_columns([audit for _, _, audit in cells])
    rows = [[name, setting] + [fmt_cell(dig(audit, path)) for _, path in columns] for name, setting, audit in cells]
    return Table([["Method", "Setting"] + [header for header, _ in columns]] + rows, convention="plain",
                 notes=near_oracle(cells, columns) + name_notes(runs))


def near_oracle(cells: list[tuple[str, str, dict]], columns: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """Per gap column, the rows within ``NEAR_ORACLE`` points of the oracle (either way) in every setting with a gap."""
    lines = []
    for header, path in [c for c in columns if c[1][0] == "gap"]:
        gaps = [(name, dig(audit, path)) for name, _, audit in cells]
        far = {name for name, gap in gaps if gap is not None and abs(gap) > NEAR_ORACLE}
        near = list(dict.fromkeys(name for name, gap in gaps if gap is not None and name not in far))
        lines.append(f"{header}: within {NEAR_ORACLE:g} points of the oracle in every setting: "
                     f"{', '.join(near) or 'none'}")
    return lines


def _as_table(table: Table | Runs) -> Table:
    return table if isinstance(table, Table) else build_table(table)


def format_table(table: Table | Runs) -> str:
    """A fixed-width text table for the terminal (of a built table, or of runs in the original convention)."""
    table = _as_table(table)
    widths = [max(len(r[i]) for r in table.rows) for i in range(len(table.rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in table.rows)


def markdown_table(table: Table | Runs) -> str:
    """A Markdown table; flagged H cells are listed under it."""
    table = _as_table(table)
    lines = ["| " + " | ".join(r) + " |" for r in table.rows]
    lines.insert(1, "|" + "---|" * len(table.rows[0]))
    lines.append(f"\nAccuracy convention: {table.convention}.")
    lines += [f"* {note}" for note in table.notes]
    lines += [f"* {f.row} {f.setting}: H printed {f.printed:.2f}, recomputed from Acc_r and the drop in Acc_f "
              f"{f.recomputed:.2f}" for f in table.flags]
    return "\n".join(lines) + "\n"


def csv_table(table: Table | Runs) -> str:
    """The table as CSV (flagged H cells keep their ``*``)."""
    out = io.StringIO()
    csv.writer(out).writerows(_as_table(table).rows)
    return out.getvalue()


def write_tables(folder: Path, runs: Sequence[Run], suffix: str = "", convention: str = "original") -> list[Path]:
    """The result table and, when the runs hold audits, the audit table, as Markdown and CSV into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in (("table", build_table(runs, convention)), ("audit", build_audit_table(runs))):
        if table is not None:
            written += [folder / f"{name}{suffix}.md", folder / f"{name}{suffix}.csv"]
            written[-2].write_text(markdown_table(table))
            written[-1].write_text(csv_table(table))
    return written
