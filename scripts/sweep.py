"""Sweeps flags of a forgetting run: runs the points in parallel, resumes, writes one table and one plot per flag.

    python scripts/sweep.py --base "-d casia100 -r runs/casia_cpu/pretrain/best.pth ..." --method gs_lora \
        --preset cpu --num_tasks 1 --vary BND=10,20,30,60 --vary beta=0.05,0.5 --out runs/sweep_casia

Each point is a train_own_forget_cl.py run in OUT/<point>/ (docs/sensitivity.md describes points, folders, outputs).
The command-line editing knows no flag's meaning, only the option strings (``dests``) and the switches."""
import argparse
import functools
import itertools
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from config import OneLineParser, at_least, build_parser, parse_args  # noqa: E402
from data import build_data, resolve_root  # noqa: E402
from engine.evaluation import evaluate  # noqa: E402
from engine.method import METHODS  # noqa: E402
from model import model_from_file  # noqa: E402
from run_setup import flags_as_json, run_main  # noqa: E402
from util.checkpoint import load_checkpoint  # noqa: E402
from util.device import resolve_device, use_bf16  # noqa: E402
from util.errors import UserError  # noqa: E402
from util.files import read_json, write_json  # noqa: E402
from util.metrics import h_mean, task_metrics  # noqa: E402
from util.plots import plot_sweep  # noqa: E402
from util.run_log import setup_logging  # noqa: E402
from util.table import Table, csv_table, fmt_cell, markdown_table, setting_label  # noqa: E402

log = logging.getLogger("sweep")
Option = tuple[str, list[str]]  # (option string as written, its values)
Dests = dict[str, str]  # option string -> argparse destination
SWITCH_VALUES = {"on": True, "off": False}
POINT_FILE = "sweep_point.json"
# GS-LoRA's per-task lists override its single-value flags: setting the single value drops the list.
OVERRIDDEN_BY = {"beta": "cl_beta_list", "pro_f_weight": "cl_prof_list"}
RUN_FLAGS = ("outdir", "resume_run")  # set by the sweep for every point
METRIC_COLUMNS = (("h_mean", "H"), ("acc_r", "Acc_r"), ("acc_f", "Acc_f"), ("bound", "H*"))
SPLIT_NAMES = (("test", ""), ("val", " val"))


def h_bound(acc_r_before: float | None, acc_f_before: float | None) -> float | None:
    """H* = 2 Acc_r0 Acc_f0 / (Acc_r0 + Acc_f0) in percent: the H of forgetting everything, Acc_r kept at its before."""
    return h_mean(acc_r_before, acc_f_before, 0.0)


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


# --- editing command lines -------------------------------------------------------------------------------------

def split_options(tokens: Sequence[str], dests: Dests) -> list[Option]:
    """Groups a command line into options, each with the values that follow it (a negative number is a value)."""
    options: list[Option] = []
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


def option_string(name: str, dests: Dests) -> str:
    """The option string of a flag named without dashes ('BND' -> '--BND', 'e' -> '-e')."""
    for flag in (f"--{name}", f"-{name}"):
        if flag in dests:
            return flag
    raise UserError(f"--vary names an unknown flag '{name}'; use a flag of train_own_forget_cl.py without its dashes "
                    f"(BND, lr, e, steps_per_task, ...)")


def set_option(options: list[Option], flag: str, values: list[str] | None, dests: Dests) -> list[Option]:
    """Sets ``flag`` to ``values`` over every spelling of its destination, at the first one's place; None removes it."""
    places = [i for i, (f, _) in enumerate(options) if dests[f] == dests[flag]]
    kept = [o for o in options if dests[o[0]] != dests[flag]]
    at = places[0] if places else len(kept)
    return kept if values is None else kept[:at] + [(flag, list(values))] + kept[at:]


def merge_options(first: list[Option], second: list[Option], dests: Dests, overridden_by: Dests) -> list[Option]:
    """``first`` with ``second``'s options set over it; a value drops its per-task list ('beta' -> 'cl_beta_list')."""
    options = list(first)
    for flag, values in second:
        if dests[flag] in overridden_by:
            options = set_option(options, option_string(overridden_by[dests[flag]], dests), None, dests)
        options = set_option(options, flag, values, dests)
    return options


def parse_vary(text: str) -> tuple[list[str], list[list[str]]]:
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
    """One run of a sweep: the flags it sets (name -> value) and its groups (varied flags joined by ':', or 'grid')."""

    assignment: dict[str, str]
    groups: list[str] = field(default_factory=list)


def plan_points(varies: Sequence[tuple[list[str], list[list[str]]]], grid: bool) -> list[Point]:
    """The base point, then each varied flag's values one at a time; with ``grid`` the product of all values."""
    if grid:
        product = itertools.product(*[[dict(zip(names, p)) for p in points] for names, points in varies])
        return [Point({k: v for part in combo for k, v in part.items()}, ["grid"]) for combo in product]
    labels = [":".join(names) for names, _ in varies]
    points = [Point({}, labels or ["base"])]
    for label, (names, values) in zip(labels, varies):
        points += [Point(dict(zip(names, v)), [label]) for v in values]
    return points


def point_argv(base: list[Option], point: Point, dests: Dests, switches: set[str], overridden_by: Dests) -> list[str]:
    """The base with the point's flags set: a switch takes 'on' or 'off', a value with spaces is a list's values."""
    options = list(base)
    for name, value in point.assignment.items():
        flag = option_string(name, dests)
        if dests[flag] in switches and value not in SWITCH_VALUES:
            raise UserError(f"--vary {name}: the switch takes on or off, not {value!r}")
        values = ([] if SWITCH_VALUES[value] else None) if dests[flag] in switches else value.split()  # None drops it
        options = merge_options(options, [(flag, values)], dests, overridden_by)
    return [token for flag, values in options for token in (flag, *values)]


def trim_task_lists(options: list[Option], num_tasks: int, dests: Dests, lists: Sequence[str]) -> list[Option]:
    """``options`` for the first ``num_tasks`` tasks: ``--num_tasks`` set, per-task lists cut to that length."""
    options = set_option(options, option_string("num_tasks", dests), [str(num_tasks)], dests)
    return [(f, v[:num_tasks] if dests[f] in lists else v) for f, v in options]


def safe_name(text: str) -> str:
    """``text`` as a file name: spaces become '-', other characters outside [A-Za-z0-9._=+-] become '_'."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text.replace(" ", "-"))


def folder_name(assignment: dict[str, str]) -> str:
    """A readable folder name for a point: 'base', or 'BND=10', 'lr=1e-2_BND=10'."""
    return safe_name("_".join(f"{k}={v}" for k, v in assignment.items())) if assignment else "base"


def point_folders(points: Sequence[Point], settings: Sequence[str]) -> list[str]:
    """One folder per point; points that resolve alike ('--beta 0.2', '--cl_beta_list 0.2') share the first one's."""
    seen: dict[str, str] = {}
    return [seen.setdefault(setting, folder_name(p.assignment)) for p, setting in zip(points, settings)]


# --- the sweep's folders and runs -------------------------------------------------------------------------------

def finished_tasks(folder: Path) -> int:
    """How many tasks the run in ``folder`` has finished (0 for a folder without results)."""
    return len(read_json(folder / "results.json").get("tasks", [])) if (folder / "results.json").is_file() else 0


def claim_folder(folder: Path, argv: list[str], settings: dict[str, object]) -> None:
    """Records a point's argv and resolved flags in its folder; refuses one of other flags, so tables never mix runs."""
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


def run_points(script: Path, todo: Sequence[tuple[Path, list[str]]], jobs: int, threads: int) -> list[str]:
    """Runs ``script`` per (folder, argv), ``jobs`` at once, output added to sweep.log; returns the failed folders."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}

    def run_one(item):
        folder, argv = item
        command = [sys.executable, str(script), *argv, "--outdir", str(folder), "--resume_run", "--no_tensorboard"]
        log.info("running %s", folder.name)
        with open(folder / "sweep.log", "a") as out:
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=script.parent).returncode
        log.info("%s %s", folder.name, "finished" if code == 0 else f"failed (status {code}, see {folder}/sweep.log)")
        return folder, code

    with ThreadPoolExecutor(jobs) as pool:
        return [str(folder) for folder, code in pool.map(run_one, todo) if code != 0]


# --- what a finished point measured, its table and plots ----------------------------------------------------------

def display_value(value) -> str:
    """A resolved flag value as the table and the plots show it: 1e-2 -> '0.01', [0.2, 0.2] -> '0.2 0.2'."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(display_value(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else "-" if value is None else str(value)


def split_summary(metrics: dict) -> dict[str, float | None]:
    """H, Acc_r, Acc_f, Acc_r before the task and the bound H* of one task on one split."""
    summary = {k: metrics.get(k) for k in ("h_mean", "acc_r", "acc_f", "acc_r_before", "acc_f_before")}
    return {**summary, "bound": h_bound(summary["acc_r_before"], summary["acc_f_before"])}


@dataclass
class Measured:
    """A finished point: the varied flags' shown values and per task {'val': summary, 'test': summary} and label."""

    folder: str
    groups: list[str]
    values: dict[str, str]
    tasks: list[dict[str, dict[str, float | None]]]
    labels: list[str]
    steps: int = 0
    wall_time_s: float = 0.0


def _sort_key(text: str):
    """Numbers in numeric order before other values in text order."""
    return (0, float(text), "") if _is_number(text) else (1, 0.0, text)


def group_rows(measured: Sequence[Measured], group: str) -> list[Measured]:
    """The points of one group, ordered by the group's first flag's value."""
    first = group.split(":")[0]
    return sorted([m for m in measured if group in m.groups], key=lambda m: _sort_key(m.values.get(first, "")))



def table_rows(measured: Sequence[Measured], groups: Sequence[str]) -> list[list[str]]:
    """Header and one row per (group, point): varied values, per task and split H, Acc_r, Acc_f, H*, then the cost."""
    flags = list(dict.fromkeys(name for m in measured for name in m.values))
    labels = max((m.labels for m in measured), key=len, default=[])
    columns = [f"{label}{split} {name}" for label in labels for _, split in SPLIT_NAMES for _, name in METRIC_COLUMNS]
    rows = [["varied", *flags, "run", *columns, "Steps", "Time (s)"]]
    for group in groups:
        for m in group_rows(measured, group):
            tasks = m.tasks + [{}] * (len(labels) - len(m.tasks))  # a point of fewer tasks gets empty cells
            cells = [fmt_cell(t.get(s, {}).get(k)) for t in tasks for s, _ in SPLIT_NAMES for k, _ in METRIC_COLUMNS]
            rows.append([group, *[m.values.get(f, "-") for f in flags], m.folder, *cells, str(m.steps),
                         f"{m.wall_time_s:.0f}"])
    return rows


def curves(measured: Sequence[Measured], flag: str, group: str) -> dict[str, list[tuple[str, dict]]]:
    """One flag's plot lines, {label: [(value, task summaries)]} by value: per task (in a grid, per other values)."""
    lines: dict[str, list[tuple[str, dict]]] = {}
    for m in group_rows(measured, group):
        others = ", ".join(f"{k} {v}" for k, v in m.values.items() if k != flag and group == "grid")
        for label, task in zip(m.labels, m.tasks):
            lines.setdefault(f"task {label}" + (f" ({others})" if others else ""), []).append((m.values[flag], task))
    for points in lines.values():
        points.sort(key=lambda p: _sort_key(p[0]))
    return lines


def write_report(out: Path, measured: Sequence[Measured], groups: list[str], method: str, options: Dests) -> str:
    """sweep.csv, sweep.md and one plot per group of flags (per flag of a grid); returns the Markdown table."""
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


# --- the command line -------------------------------------------------------------------------------------------

def sweep_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--base", required=True, help="flags of train_own_forget_cl.py shared by every point")
    add("--method", choices=METHODS.names(), help="the method (else --base's)")
    add("--preset", choices=("paper", "cpu", "smoke"), help="add the method's preset flags to --base")
    add("--num_tasks", type=at_least(1), help="run only the first N tasks (per-task lists cut)")
    add("--vary", action="append", default=[], metavar="NAME=V1,V2",
        help="a flag (no dashes) and its values; A:B=a1:b1,a2:b2 moves two flags together")
    add("--grid", action="store_true", help="every combination of the values (default: one flag at a time)")
    add("--out", required=True, help="the sweep folder: one run folder per point, table and plots")
    add("--threads", type=at_least(1), default=1, help="threads per point (OMP_NUM_THREADS)")
    add("--jobs", type=at_least(1), default=None, help="points run at once (default: cores // threads)")
    add("--dry_run", action="store_true", help="print the points' command lines and stop")
    add("--report_only", action="store_true", help="run nothing: the table and plots of the points finished so far")
    add("--log_level", default="INFO", help="logging level")
    args = parser.parse_args(argv)
    args.jobs = args.jobs or max(1, len(os.sched_getaffinity(0)) // args.threads)
    if args.preset and not args.method:
        parser.error("--preset needs --method")
    return args


def point_settings(ns: argparse.Namespace, dests: set[str] | None = None) -> dict[str, object]:
    """A point's resolved flags as JSON values, without where it runs; only ``dests`` when given (the flags its
    command line sets: a folder keeps matching when the parser gains a flag or a default depends on the cwd)."""
    return {k: v for k, v in flags_as_json(ns).items() if k not in RUN_FLAGS and (dests is None or k in dests)}


def resolved(argv: list[str]) -> argparse.Namespace:
    """A point's flags as the entry point will read them (a bad value stops the sweep with one line)."""
    ns = parse_args("sweep point", argv=argv)
    if not ns.resume or not Path(ns.resume).is_file():
        raise UserError(f"--base needs -r with an existing pre-trained checkpoint (got {ns.resume or 'none'}); the "
                        f"sweep never pre-trains")
    return ns


def shown_value(ns: argparse.Namespace, dest: str) -> str:
    """A flag's value in effect: a single-value flag overridden by its per-task list shows the list."""
    return display_value(getattr(ns, OVERRIDDEN_BY.get(dest, ""), None) or getattr(ns, dest))


@functools.lru_cache(maxsize=2)
def split_data(data_mode, data_root, cache_dir, synthetic_seed, image_size, val_ratio, seed):
    """The dataset of a run's config (cached: the points of a sweep share it)."""
    root = resolve_root(data_mode, data_root, cache_dir, synthetic_seed)
    return build_data(root, image_size, val_ratio, seed, data_mode=data_mode)


@functools.lru_cache(maxsize=8)
def validation_counts(path: Path, data_key: tuple, model_key: tuple, device_name: str, bf16: bool):
    """Per-class counts of a checkpoint on the validation split (cached: every point starts from the same -r)."""
    data = split_data(*data_key)
    model = model_from_file(path, data.train.classes, dict(model_key)).to(device_name)
    return evaluate(model, data.train, data.val_idx, 256, torch.device(device_name), bf16)


def validation_metrics(folder: Path, results: dict) -> list[dict]:
    """Per task, the kept weights' metrics on the validation split (cached), checked against the selection's H."""
    cached = folder / "val_metrics.json"
    if cached.is_file() and len(read_json(cached)["tasks"]) == len(results["tasks"]):
        return read_json(cached)["tasks"]
    cfg, task_dir = results["config"], folder / "task-level"
    model_args = load_checkpoint(task_dir / "Backbone_task_0.pth")["model_args"]
    data_key = (cfg["data_mode"], cfg["data_root"], cfg["cache_dir"], cfg["synthetic_seed"], model_args["image_size"],
                cfg["val_ratio"], cfg.get("validation_seed", cfg["seed"]))
    device = resolve_device(cfg.get("device", "auto"))
    where = (data_key, tuple(sorted(model_args.items())), str(device), use_bf16(cfg.get("precision", "auto"), device))
    before, tasks = validation_counts(Path(cfg["resume"]), *where), []
    for p, task in zip(results["plan"], results["tasks"]):
        after = validation_counts(task_dir / f"Backbone_task_{task['task']}.pth", *where)
        tasks.append(task_metrics(before, after, *(p[k] for k in ("remain", "forget", "old", "missing")), "original"))
        selected = task["selection"].get("h_mean") if task["selection"]["rule"] == "val" else None
        if selected is not None and abs(selected - (tasks[-1]["h_mean"] or 0.0)) > 0.05:
            log.warning("%s task %d: validation H %.2f, but selection recorded %.2f", folder.name, task["task"],
                        tasks[-1]["h_mean"], selected)
        before = after
    write_json(cached, {"tasks": tasks})
    return tasks


def measure(folder: Path, point: Point, values: dict[str, str]) -> Measured:
    results = read_json(folder / "results.json")
    validation = validation_metrics(folder, results)
    plans = {p["task"]: p for p in results["plan"]}
    return Measured(folder.name, point.groups, values,
                    [{"val": split_summary(v), "test": split_summary(t)} for v, t in zip(validation, results["tasks"])],
                    [setting_label(plans.get(t["task"]), t["task"]) for t in results["tasks"]],
                    sum(t.get("optimizer_steps") or 0 for t in results["tasks"]),
                    sum(t.get("wall_time_s") or 0.0 for t in results["tasks"]))


def plan(args, dests: Dests, switches: set) -> dict[Path, tuple[Point, list[str], argparse.Namespace]]:
    """The sweep's run folders, each with its point (groups merged), command line and resolved flags."""
    # The base: --base over the method's preset (the base wins), with --method and the first --num_tasks tasks.
    tokens = shlex.split(args.base) + (["--method", args.method] if args.method else [])
    preset = shlex.split(METHODS.get(args.method).presets[args.preset]) if args.preset else []
    base = merge_options(split_options(preset, dests), split_options(tokens, dests), dests, OVERRIDDEN_BY)
    for name in RUN_FLAGS:
        base = set_option(base, option_string(name, dests), None, dests)
    if args.num_tasks:
        base = trim_task_lists(base, args.num_tasks, dests, OVERRIDDEN_BY.values())
    points = plan_points([parse_vary(v) for v in args.vary], args.grid)
    argvs = [point_argv(base, p, dests, switches, OVERRIDDEN_BY) for p in points]
    spaces = [resolved(argv) for argv in argvs]
    settings = [json.dumps(point_settings(ns), sort_keys=True) for ns in spaces]
    unique: dict[Path, tuple[Point, list[str], argparse.Namespace]] = {}
    for name, point, argv, ns in zip(point_folders(points, settings), points, argvs, spaces):
        kept = unique.setdefault(Path(args.out) / name, (point, argv, ns))[0]  # a shared folder merges the groups
        kept.groups.extend([g for g in point.groups if g not in kept.groups])
    return unique


def main(argv=None) -> list[str]:
    """Runs the sweep; returns the folders it ran (finished points are skipped)."""
    args = sweep_args(argv)
    setup_logging(args.log_level)
    actions = build_parser("", forgetting=True)._actions  # the forgetting parser's option strings and switches
    dests, switches = {s: a.dest for a in actions for s in a.option_strings}, {a.dest for a in actions if a.nargs == 0}
    points = plan(args, dests, switches)
    if args.dry_run:
        for folder, (_, command, _) in points.items():
            print(f"{folder.name}: {shlex.join(command)}")
        return []
    for folder, (_, command, ns) in points.items():
        if not args.report_only or folder.is_dir():
            claim_folder(folder, command, point_settings(ns, {dests[t] for t in command if t in dests}))
    todo = [(f, a) for f, (_, a, ns) in points.items() if finished_tasks(f) < ns.num_tasks]
    log.info("%d points, %d to run (%d at once)", len(points), 0 if args.report_only else len(todo), args.jobs)
    failed = [] if args.report_only else run_points(ROOT / "train_own_forget_cl.py", todo, args.jobs, args.threads)
    options = {n: option_string(n, dests) for v in args.vary for n in parse_vary(v)[0]}
    measured = [measure(f, p, {n: shown_value(ns, dests[flag]) for n, flag in options.items()})
                for f, (p, _, ns) in points.items() if str(f) not in failed and finished_tasks(f) >= ns.num_tasks]
    if measured:
        groups = ["grid"] if args.grid else list(dict.fromkeys(g for p, _, _ in points.values() for g in p.groups))
        print(write_report(Path(args.out), measured, groups, next(iter(points.values()))[2].method, options))
    if failed:
        raise UserError(f"{len(failed)} point(s) failed: {', '.join(failed)} (each folder's sweep.log says why)")
    return [] if args.report_only else [str(f) for f, _ in todo]


if __name__ == "__main__":
    run_main(main, interrupted="finished points are kept; rerun the same command to continue")
