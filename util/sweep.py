"""Flag sweeps over forgetting runs: the points of a sweep, their command lines, their folders and their table.

A sweep edits a base command line of ``train_own_forget_cl.py``. ``--vary NAME=V1,V2`` gives a flag's values;
flags joined by ':' move together (``--vary e:steps_per_task=3:162,5:270``). By default each varied flag moves
alone around the base (one at a time, every other flag at its base value); a grid takes the full product. Each
point is one run folder under the sweep's folder; points whose flags resolve alike share one folder, so the base
point is run once, and so is a point that sets a flag to its base value. What a point reports per task: H, Acc_r,
Acc_f and the bound H* = 2 Acc_r0 Acc_f0 / (Acc_r0 + Acc_f0), the H of a perfect step (Acc_f to 0, Acc_r kept at
its before-value Acc_r0), on the validation split (what selection sees) and on the test split.

Also here: running the points as subprocesses (``run_points``) and writing the table and plots (``write_report``).
Nothing here knows a flag's meaning: the caller passes which option strings exist (``dests``: option string ->
destination name) and which destinations are switches without a value.
"""
import itertools
import logging
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from util.errors import UserError
from util.files import read_json, write_json
from util.plots import plot_sweep
from util.table import Table, csv_table, markdown_table

log = logging.getLogger("sweep")

Option = Tuple[str, List[str]]  # (option string as written, its values)
SWITCH_VALUES = {"on": True, "off": False}
POINT_FILE = "sweep_point.json"


def h_bound(acc_r_before: Optional[float], acc_f_before: Optional[float]) -> Optional[float]:
    """H* in percent: the H of forgetting everything (Acc_f 0) while keeping Acc_r at its before-value."""
    if acc_r_before is None or acc_f_before is None or acc_r_before + acc_f_before == 0:
        return None
    return 2 * acc_r_before * acc_f_before / (acc_r_before + acc_f_before)


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def split_options(tokens: Sequence[str], dests: Dict[str, str]) -> List[Option]:
    """Groups a command line into options, each with the values that follow it (a negative number is a value)."""
    options: List[Option] = []
    for token in tokens:
        if token in dests:
            options.append((token, []))
        elif token.startswith("-") and not _is_number(token):
            raise UserError(f"unknown flag {token} in --base; see python train_own_forget_cl.py --help")
        elif not options:
            raise UserError(f"--base starts with the value {token!r}, not a flag")
        else:
            options[-1][1].append(token)
    return options


def option_string(name: str, dests: Dict[str, str]) -> str:
    """The option string of a flag named without dashes ('BND' -> '--BND', 'e' -> '-e')."""
    for flag in (f"--{name}", f"-{name}"):
        if flag in dests:
            return flag
    raise UserError(f"--vary names an unknown flag '{name}'; use a flag of train_own_forget_cl.py without its dashes "
                    f"(BND, lr, e, steps_per_task, ...)")


def set_option(options: List[Option], flag: str, values: Optional[List[str]], dests: Dict[str, str]) -> List[Option]:
    """``options`` with every spelling of ``flag``'s destination replaced by ``flag values`` (at the first one's
    place, else at the end), or removed when ``values`` is None."""
    dest = dests[flag]
    places = [i for i, (f, _) in enumerate(options) if dests[f] == dest]
    kept = [o for o in options if dests[o[0]] != dest]
    if values is None:
        return kept
    at = places[0] if places else len(kept)
    return kept[:at] + [(flag, list(values))] + kept[at:]


def merge_options(first: List[Option], second: List[Option], dests: Dict[str, str],
                  overridden_by: Dict[str, str]) -> List[Option]:
    """``first`` with each option of ``second`` set over it (a preset under a base command line); a single-value
    flag of ``second`` also drops ``first``'s per-task list that would override it (``overridden_by``)."""
    options = list(first)
    for flag, values in second:
        if dests[flag] in overridden_by:
            options = set_option(options, option_string(overridden_by[dests[flag]], dests), None, dests)
        options = set_option(options, flag, values, dests)
    return options


def parse_vary(text: str) -> Tuple[List[str], List[List[str]]]:
    """'BND=10,20' -> (['BND'], [['10'], ['20']]); 'e:steps_per_task=3:162,5:270' moves two flags together."""
    names, sep, values = text.partition("=")
    names_list = names.split(":")
    if not sep or not all(names_list) or not values:
        raise UserError(f"--vary {text!r}: write NAME=V1,V2,... (or A:B=a1:b1,a2:b2 for flags moved together)")
    points = [v.split(":") for v in values.split(",")]
    wrong = [":".join(p) for p in points if len(p) != len(names_list) or not all(p)]
    if wrong:
        raise UserError(f"--vary {text!r}: value {wrong[0]!r} does not give one value to each of {names}")
    return names_list, points


@dataclass
class Point:
    """One run of a sweep: the flag values it sets (flag name -> value) and the groups it belongs to (the varied
    flags, joined by ':', or 'grid')."""

    assignment: Dict[str, str]
    groups: List[str] = field(default_factory=list)


def plan_points(varies: Sequence[Tuple[List[str], List[List[str]]]], grid: bool) -> List[Point]:
    """The base point, then each varied flag's values one at a time; with ``grid`` the product of all values."""
    if grid:
        product = itertools.product(*[[dict(zip(names, p)) for p in points] for names, points in varies])
        return [Point({k: v for part in combo for k, v in part.items()}, ["grid"]) for combo in product]
    labels = [":".join(names) for names, _ in varies]
    points = [Point({}, labels or ["base"])]
    for label, (names, values) in zip(labels, varies):
        points += [Point(dict(zip(names, v)), [label]) for v in values]
    return points


def point_argv(base: List[Option], point: Point, dests: Dict[str, str], switches: Set[str],
               overridden_by: Dict[str, str]) -> List[str]:
    """The command line of a point: the base with the point's flags set.

    A switch takes 'on' or 'off'. A value with spaces is several values (a list flag). Setting a single-value flag
    drops the per-task list that would override it (``overridden_by``: 'beta' -> 'cl_beta_list').
    """
    options = list(base)
    for name, value in point.assignment.items():
        flag = option_string(name, dests)
        dest = dests[flag]
        if dest in switches:
            if value not in SWITCH_VALUES:
                raise UserError(f"--vary {name}: the switch takes on or off, not {value!r}")
            options = set_option(options, flag, [] if SWITCH_VALUES[value] else None, dests)
            continue
        if dest in overridden_by:
            options = set_option(options, option_string(overridden_by[dest], dests), None, dests)
        options = set_option(options, flag, value.split(), dests)
    return [token for flag, values in options for token in (flag, *values)]


def trim_task_lists(options: List[Option], num_tasks: int, dests: Dict[str, str], lists: Sequence[str]
                    ) -> List[Option]:
    """``options`` for the first ``num_tasks`` tasks: ``--num_tasks`` set, per-task lists cut to that length."""
    options = set_option(options, option_string("num_tasks", dests), [str(num_tasks)], dests)
    return [(f, v[:num_tasks] if dests[f] in lists else v) for f, v in options]


def safe_name(text: str) -> str:
    """``text`` as a file name: spaces become '-', other characters outside [A-Za-z0-9._=+-] become '_'."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text.replace(" ", "-"))


def folder_name(assignment: Dict[str, str]) -> str:
    """A readable folder name for a point: 'base', or 'BND=10', 'lr=1e-2_BND=10'."""
    return safe_name("_".join(f"{k}={v}" for k, v in assignment.items())) if assignment else "base"


def point_folders(points: Sequence[Point], settings: Sequence[str]) -> List[str]:
    """One folder name per point; points with the same resolved ``settings`` (a canonical text of their flags, so
    '--beta 0.2' equals '--cl_beta_list 0.2') share the first one's folder."""
    seen: Dict[str, str] = {}
    return [seen.setdefault(setting, folder_name(p.assignment)) for p, setting in zip(points, settings)]


def finished_tasks(folder: Path) -> int:
    """How many tasks the run in ``folder`` has finished (0 for a folder without results)."""
    path = folder / "results.json"
    return len(read_json(path).get("tasks", [])) if path.is_file() else 0


def claim_folder(folder: Path, argv: List[str], settings: Dict[str, object]) -> None:
    """Records a point's command line and resolved flags (``settings``) in its folder; a folder that holds a run of
    other resolved flags is refused, so that a changed --base never mixes runs of two settings in one table."""
    path = folder / POINT_FILE
    if path.is_file():
        saved = read_json(path).get("settings", {})
        differing = sorted(k for k in saved.keys() | settings.keys() if saved.get(k) != settings.get(k))
        if differing:
            shown = ", ".join(f"--{k} {saved.get(k)!r} -> {settings.get(k)!r}" for k in differing[:3])
            raise UserError(f"{folder} holds a run of other flags ({shown}); use another --out or remove that folder")
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, {"argv": argv, "settings": settings})


def display_value(value) -> str:
    """A resolved flag value as the table and the plots show it: 1e-2 -> '0.01', [0.2, 0.2] -> '0.2 0.2'."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(display_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def split_summary(metrics: Dict) -> Dict[str, Optional[float]]:
    """H, Acc_r, Acc_f, Acc_r before the task and the bound H* of one task on one split."""
    keys = ("h_mean", "acc_r", "acc_f", "acc_r_before", "acc_f_before")
    summary = {k: metrics.get(k) for k in keys}
    summary["bound"] = h_bound(summary["acc_r_before"], summary["acc_f_before"])
    return summary


@dataclass
class Measured:
    """A finished point: its folder, groups, resolved values of the varied flags (display strings), and per task
    the summary of each split ({'val': ..., 'test': ...}) and the task's label ('100-20')."""

    folder: str
    groups: List[str]
    values: Dict[str, str]
    tasks: List[Dict[str, Dict[str, Optional[float]]]]
    labels: List[str]
    steps: int = 0
    wall_time_s: float = 0.0


def _sort_key(text: str):
    """Numbers in numeric order before other values in text order."""
    return (0, float(text), "") if _is_number(text) else (1, 0.0, text)


def group_rows(measured: Sequence[Measured], group: str) -> List[Measured]:
    """The points of one group, ordered by the group's first flag's value."""
    first = group.split(":")[0]
    rows = [m for m in measured if group in m.groups]
    return sorted(rows, key=lambda m: _sort_key(m.values.get(first, "")))


METRIC_COLUMNS = (("h_mean", "H"), ("acc_r", "Acc_r"), ("acc_f", "Acc_f"), ("bound", "H*"))
SPLIT_NAMES = (("test", ""), ("val", " val"))


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def table_rows(measured: Sequence[Measured], groups: Sequence[str]) -> List[List[str]]:
    """Header and one row per (group, point): the varied flags' values, then per task and split H, Acc_r, Acc_f
    and H*, then optimizer steps and wall time summed over the tasks."""
    flags = list(dict.fromkeys(name for m in measured for name in m.values))
    labels = max((m.labels for m in measured), key=len, default=[])
    header = ["varied", *flags, "run"]
    header += [f"{label}{split} {name}" for label in labels for _, split in SPLIT_NAMES for _, name in METRIC_COLUMNS]
    rows = [header + ["Steps", "Time (s)"]]
    for group in groups:
        for m in group_rows(measured, group):
            cells = [group, *[m.values.get(f, "-") for f in flags], m.folder]
            for i in range(len(labels)):
                task = m.tasks[i] if i < len(m.tasks) else {}
                cells += [_fmt(task.get(split, {}).get(key)) for split, _ in SPLIT_NAMES for key, _ in METRIC_COLUMNS]
            rows.append(cells + [str(m.steps), f"{m.wall_time_s:.0f}"])
    return rows


def curves(measured: Sequence[Measured], flag: str, group: str) -> Dict[str, List[Tuple[str, Dict]]]:
    """The lines of one flag's plot: {line label: [(value, {'val': summary, 'test': summary}), ...]}, one line per
    task (and, in a grid, per setting of the other varied flags), ordered by value."""
    lines: Dict[str, List[Tuple[str, Dict]]] = {}
    for m in group_rows(measured, group):
        others = ", ".join(f"{k} {v}" for k, v in m.values.items() if k != flag and group == "grid")
        for label, task in zip(m.labels, m.tasks):
            key = f"task {label}" + (f" ({others})" if others else "")
            lines.setdefault(key, []).append((m.values[flag], task))
    for points in lines.values():
        points.sort(key=lambda p: _sort_key(p[0]))
    return lines


def run_points(script: Path, todo: Sequence[Tuple[Path, List[str]]], jobs: int, threads: int) -> List[str]:
    """Runs ``script`` (train_own_forget_cl.py) for each (folder, argv), ``jobs`` at once with ``threads`` threads
    each, output appended to the folder's sweep.log; returns the folders whose run failed."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}

    def run_one(item):
        folder, argv = item
        command = [sys.executable, str(script), *argv, "--outdir", str(folder), "--resume_run", "--no_tensorboard"]
        log.info("running %s", folder.name)
        with open(folder / "sweep.log", "a") as output:
            code = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                  cwd=script.parent).returncode
        log.info("%s %s", folder.name, "finished" if code == 0 else f"failed (status {code}, see {folder}/sweep.log)")
        return folder, code

    with ThreadPoolExecutor(jobs) as pool:
        return [str(folder) for folder, code in pool.map(run_one, todo) if code != 0]


def write_report(out: Path, measured: Sequence[Measured], groups: List[str], method: str,
                 options: Dict[str, str]) -> str:
    """sweep.csv, sweep.md and one plot per flag (per group of flags moved together; per flag of a grid); returns
    the Markdown table. ``options`` maps each varied flag's name to its option string ('e' -> '-e')."""
    table = Table(table_rows(measured, groups))
    (out / "sweep.csv").write_text(csv_table(table))
    (out / "sweep.md").write_text(markdown_table(table))
    plots = [(flag, "grid") for flag in measured[0].values] if groups == ["grid"] else \
        [(group.split(":")[0], group) for group in groups if group != "base"]
    for flag, group in plots:
        together = [options[f] for f in group.split(":")[1:]]
        title = f"{method}: {options[flag]}" + (f" (with {', '.join(together)})" if together else "") + \
            (", every combination" if group == "grid" else ", the other flags at the base")
        plot_sweep(options[flag], curves(measured, flag, group), out / f"sweep_{safe_name(flag)}.png", title)
    return markdown_table(table)
