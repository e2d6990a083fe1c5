"""Sweeps flags of a forgetting run: runs the points in parallel, resumes, writes one table and one plot per flag.

    python scripts/sweep.py --base "-d casia100 -r runs/casia_cpu/pretrain/best.pth ..." --method gs_lora \
        --preset cpu --num_tasks 1 --vary BND=10,20,30,60 --vary beta=0.05,0.5 --out runs/sweep_casia

Each point is a run of train_own_forget_cl.py in OUT/<point>/ (never a pre-training: --base must name the -r
checkpoint). By default each --vary flag moves alone around the base; --grid runs the product. A finished point is
skipped, a killed one is resumed (--resume_run continues after its last finished task). Writes OUT/sweep.csv,
OUT/sweep.md and OUT/sweep_<flag>.png: H, Acc_r and Acc_f against the flag's value on the validation split
(what selection sees, recomputed here from the saved checkpoints) and on the test split, with the bound H*.
"""
import argparse
import functools
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from config import OneLineParser, at_least, build_parser, parse_args  # noqa: E402
from data import build_data, resolve_root  # noqa: E402
from engine.evaluation import evaluate  # noqa: E402
from engine.method import METHODS  # noqa: E402
from model import model_from_file  # noqa: E402
from run_setup import flags_as_json, run_main  # noqa: E402
from util import sweep  # noqa: E402
from util.checkpoint import load_checkpoint  # noqa: E402
from util.device import resolve_device, use_bf16  # noqa: E402
from util.errors import UserError  # noqa: E402
from util.files import read_json, write_json  # noqa: E402
from util.metrics import task_metrics  # noqa: E402
from util.run_log import setup_logging  # noqa: E402
from util.table import setting_label  # noqa: E402

log = logging.getLogger("sweep")
# GS-LoRA's per-task lists override its single-value flags: setting the single value drops the list.
OVERRIDDEN_BY = {"beta": "cl_beta_list", "pro_f_weight": "cl_prof_list"}
RUN_FLAGS = ("outdir", "resume_run")  # set by the sweep for every point


def sweep_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="flags of train_own_forget_cl.py shared by every point")
    parser.add_argument("--method", choices=METHODS.names(), help="the method (else --base's)")
    parser.add_argument("--preset", choices=("paper", "cpu", "smoke"), help="add the method's preset flags to --base")
    parser.add_argument("--num_tasks", type=at_least(1), help="run only the first N tasks (per-task lists cut)")
    parser.add_argument("--vary", action="append", default=[], metavar="NAME=V1,V2",
                        help="a flag (no dashes) and its values; A:B=a1:b1,a2:b2 moves two flags together")
    parser.add_argument("--grid", action="store_true", help="every combination of the values (default: one flag at "
                                                            "a time around the base)")
    parser.add_argument("--out", required=True, help="the sweep folder: one run folder per point, table and plots")
    parser.add_argument("--threads", type=at_least(1), default=1, help="threads per point (OMP_NUM_THREADS)")
    parser.add_argument("--jobs", type=at_least(1), default=None, help="points run at once (default: cores // threads)")
    parser.add_argument("--dry_run", action="store_true", help="print the points' command lines and stop")
    parser.add_argument("--report_only", action="store_true",
                        help="run nothing: the table and plots of the points finished so far (also while it runs)")
    parser.add_argument("--log_level", default="INFO", help="logging level")
    args = parser.parse_args(argv)
    args.jobs = args.jobs or max(1, len(os.sched_getaffinity(0)) // args.threads)
    if args.preset and not args.method:
        parser.error("--preset needs --method")
    return args


def flag_table() -> Tuple[Dict[str, str], set]:
    """The forgetting parser's option strings (-> destination) and the destinations that are switches."""
    actions = build_parser("", forgetting=True)._actions
    return ({s: a.dest for a in actions for s in a.option_strings}, {a.dest for a in actions if a.nargs == 0})


def base_options(args, dests: Dict[str, str]) -> List[sweep.Option]:
    """--base over the method's preset (the base wins), with --method and the first --num_tasks tasks."""
    tokens = shlex.split(args.base) + (["--method", args.method] if args.method else [])
    preset = shlex.split(METHODS.get(args.method).presets[args.preset]) if args.preset else []
    options = sweep.merge_options(sweep.split_options(preset, dests), sweep.split_options(tokens, dests), dests,
                                  OVERRIDDEN_BY)
    for name in RUN_FLAGS:
        options = sweep.set_option(options, sweep.option_string(name, dests), None, dests)
    if args.num_tasks:
        options = sweep.trim_task_lists(options, args.num_tasks, dests, OVERRIDDEN_BY.values())
    return options


def point_settings(ns: argparse.Namespace, dests: Optional[Set[str]] = None) -> Dict[str, object]:
    """A point's resolved flags as JSON values, without where it runs; only ``dests`` when given (the flags its
    command line sets: a folder keeps matching when the parser gains a flag or a default depends on the cwd)."""
    return {k: v for k, v in flags_as_json(ns).items() if k not in RUN_FLAGS and (dests is None or k in dests)}


def resolved(argv: List[str]) -> argparse.Namespace:
    """A point's flags as the entry point will read them (a bad value stops the sweep with one line)."""
    ns = parse_args("sweep point", argv=argv)
    if not ns.resume or not Path(ns.resume).is_file():
        raise UserError(f"--base needs -r with an existing pre-trained checkpoint (got {ns.resume or 'none'}); the "
                        f"sweep never pre-trains")
    return ns


def shown_value(ns: argparse.Namespace, dest: str) -> str:
    """A flag's value in effect: a single-value flag overridden by its per-task list shows the list."""
    value = getattr(ns, OVERRIDDEN_BY[dest]) if getattr(ns, OVERRIDDEN_BY.get(dest, ""), None) else getattr(ns, dest)
    return sweep.display_value(value)


@functools.lru_cache(maxsize=2)
def split_data(data_mode: str, data_root: str, cache_dir: str, synthetic_seed: int, image_size: int,
               val_ratio: float, seed: int):
    root = resolve_root(data_mode, data_root, cache_dir, synthetic_seed)
    return build_data(root, image_size, val_ratio, seed, data_mode=data_mode)


@functools.lru_cache(maxsize=8)
def validation_counts(path: Path, data_key: Tuple, model_key: Tuple, device_name: str, bf16: bool):
    """Per-class counts of a checkpoint on the validation split (cached: every point starts from the same -r)."""
    data = split_data(*data_key)
    model = model_from_file(path, data.train.classes, dict(model_key))
    device = torch.device(device_name)
    return evaluate(model.to(device), data.train, data.val_idx, 256, device, bf16)


def validation_metrics(folder: Path, results: Dict) -> List[Dict]:
    """Per task, the metrics of the kept weights on the validation split (before-values from the weights the task
    started from), cached in val_metrics.json; checked against the H the run's selection recorded."""
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
    for plan, task in zip(results["plan"], results["tasks"]):
        after = validation_counts(task_dir / f"Backbone_task_{task['task']}.pth", *where)
        tasks.append(task_metrics(before, after, plan["remain"], plan["forget"], plan["old"], plan["missing"],
                                  "original"))
        selected = task["selection"].get("h_mean") if task["selection"]["rule"] == "val" else None
        if selected is not None and abs(selected - (tasks[-1]["h_mean"] or 0.0)) > 0.05:
            log.warning("%s task %d: validation H %.2f, but selection recorded %.2f", folder.name, task["task"],
                        tasks[-1]["h_mean"], selected)
        before = after
    write_json(cached, {"tasks": tasks})
    return tasks


def measure(folder: Path, point: sweep.Point, values: Dict[str, str]) -> sweep.Measured:
    results = read_json(folder / "results.json")
    validation = validation_metrics(folder, results)
    plans = {p["task"]: p for p in results["plan"]}
    return sweep.Measured(folder.name, point.groups, values,
                          [{"val": sweep.split_summary(v), "test": sweep.split_summary(t)}
                           for v, t in zip(validation, results["tasks"])],
                          [setting_label(plans.get(t["task"]), t["task"]) for t in results["tasks"]],
                          sum(t.get("optimizer_steps") or 0 for t in results["tasks"]),
                          sum(t.get("wall_time_s") or 0.0 for t in results["tasks"]))


def plan(args, dests: Dict[str, str], switches: set) -> Dict[Path, Tuple[sweep.Point, List[str], argparse.Namespace]]:
    """The sweep's run folders, each with its point (groups of the points sharing it merged), command line and
    resolved flags."""
    base = base_options(args, dests)
    points = sweep.plan_points([sweep.parse_vary(v) for v in args.vary], args.grid)
    argvs = [sweep.point_argv(base, p, dests, switches, OVERRIDDEN_BY) for p in points]
    spaces = [resolved(argv) for argv in argvs]
    settings = [json.dumps(point_settings(ns), sort_keys=True) for ns in spaces]
    unique: Dict[Path, Tuple[sweep.Point, List[str], argparse.Namespace]] = {}
    for name, point, argv, ns in zip(sweep.point_folders(points, settings), points, argvs, spaces):
        folder = Path(args.out) / name
        if folder in unique:
            unique[folder][0].groups.extend(g for g in point.groups if g not in unique[folder][0].groups)
        else:
            unique[folder] = (point, argv, ns)
    return unique


def main(argv=None) -> List[str]:
    """Runs the sweep; returns the folders it ran (finished points are skipped)."""
    args = sweep_args(argv)
    setup_logging(args.log_level)
    dests, switches = flag_table()
    points = plan(args, dests, switches)
    if args.dry_run:
        for folder, (_, point_argv, _) in points.items():
            print(f"{folder.name}: {shlex.join(point_argv)}")
        return []
    for folder, (_, point_argv, ns) in points.items():
        if not args.report_only or folder.is_dir():
            sweep.claim_folder(folder, point_argv, point_settings(ns, {dests[t] for t in point_argv if t in dests}))
    todo = [(f, a) for f, (_, a, ns) in points.items() if sweep.finished_tasks(f) < ns.num_tasks]
    log.info("%d points, %d to run (%d at once)", len(points), 0 if args.report_only else len(todo), args.jobs)
    failed = [] if args.report_only else sweep.run_points(ROOT / "train_own_forget_cl.py", todo, args.jobs,
                                                          args.threads)
    done = [f for f, (_, _, ns) in points.items() if str(f) not in failed and sweep.finished_tasks(f) >= ns.num_tasks]
    names = [n for v in args.vary for n in sweep.parse_vary(v)[0]]
    measured = [measure(f, p, {n: shown_value(ns, dests[sweep.option_string(n, dests)]) for n in names})
                for f, (p, _, ns) in points.items() if f in done]
    if measured:
        groups = ["grid"] if args.grid else list(dict.fromkeys(g for p, _, _ in points.values() for g in p.groups))
        options = {n: sweep.option_string(n, dests) for n in names}
        print(sweep.write_report(Path(args.out), measured, groups, next(iter(points.values()))[2].method, options))
    if failed:
        raise UserError(f"{len(failed)} point(s) failed: {', '.join(failed)} (each folder's sweep.log says why)")
    return [] if args.report_only else [str(f) for f, _ in todo]


if __name__ == "__main__":
    run_main(main, interrupted="finished points are kept; rerun the same command to continue")
