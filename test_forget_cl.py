"""Re-evaluate the saved task checkpoints of one or more runs and print the paper-style table.

    python test_forget_cl.py --run_dir runs/quickstart/gs_lora runs/quickstart/gs_lora_pp
    python test_forget_cl.py --run_dir runs/compare/* --audit --audit_oracle runs/compare/retrain --audit_out DIR

Every metric is recomputed from the merged checkpoints (before-values from the previous task's, or -r) and compared with
results.json, which gives the cost columns. Writes table.csv and table.md per run (and --table_dir's combined table);
--audit audits every task (docs/audits.md) into results.json (or a copy under --audit_out), writes audit.md/.csv."""
import argparse
import functools
import logging
import math
from pathlib import Path

import torch

from audit.finished import audit_finished_run
from audit.settings import audit_settings_from_args
from config import parse_eval_args
from data import RunData, build_data, resolve_root
from data.task_plan import Task
from engine.evaluation import evaluate, outside_accuracy
from engine.forgetting import with_outside
from model import model_from_file, pretrained_weights
from run_setup import outside_classes, run_main, settings_from_args
from util.checkpoint import load_checkpoint
from util.device import resolve_device, use_bf16
from util.errors import UserError
from util.files import read_results, unwritable_reason
from util.metrics import task_metrics
from util.run_lock import lock_run_folder
from util.run_log import setup_logging
from util.table import build_audit_table, build_table, distinct_row_names, format_table, write_tables

log = logging.getLogger("test_forget_cl")

# Re-evaluation repeats the run's own evaluation, so only floating-point noise may differ (accuracy points).
TOLERANCE = 0.01


cached_data = functools.lru_cache(maxsize=2)(build_data)  # runs of one comparison share their dataset: decode it once


def difference(fresh, saved) -> float:
    """Accuracy points between a recomputed and a saved metric; a value present on one side only never agrees."""
    return abs(fresh - saved) if fresh is not None and saved is not None else 0.0 if fresh is saved else math.inf


def open_run(run_dir: Path) -> tuple[dict, list[Task], dict, RunData]:
    """A run's results.json, its task plan (as trained), its model arguments (from the task 0 checkpoint) and data."""
    results = read_results(run_dir, f"is {run_dir} a run folder of train_own_forget_cl.py?")
    if "plan" not in results:
        raise UserError(f"{run_dir / 'results.json'} has no task plan (written by an older version); rerun the "
                        f"forgetting run")
    cfg = results["config"]
    model_args = load_checkpoint(run_dir / "task-level" / "Backbone_task_0.pth")["model_args"]
    root = resolve_root(cfg["data_mode"], cfg["data_root"], cfg["cache_dir"], cfg["synthetic_seed"])
    data = cached_data(root, model_args["image_size"], cfg["val_ratio"], cfg.get("validation_seed", cfg["seed"]),
                       cfg.get("num_workers", 4), cfg["data_mode"])
    tasks = [Task(t["task"], t["remain"], t["forget"], t["old"], t["missing"]) for t in results["plan"]]
    return results, tasks, model_args, data


def reevaluate(run_dir: Path, device: torch.device, batch_size: int) -> tuple[dict, float]:
    """A run's results.json with its metrics recomputed from its checkpoints, and the largest change (points)."""
    results, tasks, model_args, data = open_run(run_dir)
    cfg = results["config"]
    bf16 = use_bf16(cfg.get("precision", "auto"), device)  # the run's own precision, so the numbers agree
    outside = None
    if cfg.get("imagenet900_root"):  # the same outside set and full head as the run
        full_head = pretrained_weights(load_checkpoint(cfg["resume"])["model"], data.test.classes)[1]
        outside = outside_classes(Path(cfg["imagenet900_root"]), full_head, model_args["image_size"],
                                  cfg.get("num_workers", 4), cfg["resume"])

    def evaluate_file(path: Path):
        """Per-class test counts of a checkpoint (the run's -r built with ``model_args``) and its Acc_m (or None)."""
        model = model_from_file(path, data.test.classes, model_args).to(device)
        accuracy = outside_accuracy(model, outside, batch_size, device, bf16) if outside else None
        return evaluate(model, data.test, torch.arange(len(data.test)), batch_size, device, bf16), accuracy

    before = evaluate_file(Path(cfg["resume"])) if cfg.get("resume") else None
    worst = 0.0
    for saved in results["tasks"]:
        task = tasks[saved["task"]]
        after = evaluate_file(run_dir / "task-level" / f"Backbone_task_{task.index}.pth")
        if before is not None:
            classes = (task.remain, task.forget, task.old, task.missing)
            fresh, plain = (with_outside(task_metrics(before[0], after[0], *classes, convention), before[1], after[1])
                            for convention in ("original", "plain"))
            worst = max([worst] + [difference(fresh[k], saved.get(k)) for k in fresh])
            saved.update(fresh, plain=plain)
        before = after
    return results, worst


def add_audits(run_dir: Path, name: str, results: dict, device: torch.device, args) -> Path:
    """Audits a run's tasks into its results.json in the returned folder: its own or --audit_out/<name> (gs_lora_k3)."""
    _, tasks, model_args, data = open_run(run_dir)  # the data is decoded once (cached)
    settings = settings_from_args(argparse.Namespace(**results["config"]), run_dir, device, model_args)
    settings.test_batch_size, settings.audit = args.test_batch_size, audit_settings_from_args(args)
    out = Path(args.audit_out) / name.replace(" (", "_").rstrip(")") if args.audit_out else run_dir
    return audit_finished_run(run_dir, results, data, tasks, settings, out)


def lock_run_folders(run_dirs: list[Path], args) -> list[bool]:
    """Locks the run folders written into; returns per folder whether it gets its own tables (a read-only one: no)."""
    own_tables = []
    for run_dir in run_dirs:
        reason = unwritable_reason(run_dir) if run_dir.is_dir() else None  # a missing folder: open_run says so
        if reason is None:
            lock_run_folder(run_dir, "--run_dir")
        elif not args.table_dir or (args.audit and not args.audit_out):  # audits written in place
            raise UserError(f"cannot write the tables into {run_dir} ({reason}); pass --table_dir DIR (with --audit, "
                            f"also --audit_out DIR) to write them elsewhere")
        else:
            log.warning("%s is not writable (%s): its table is only in --table_dir %s", run_dir, reason, args.table_dir)
        own_tables.append(reason is None)
    return own_tables


def main() -> None:
    args = parse_eval_args(__doc__.splitlines()[0])
    setup_logging(args.log_level)
    device = resolve_device(args.device)
    run_dirs, reevaluated, differing = [Path(d) for d in args.run_dir], [], []
    own_tables = lock_run_folders(run_dirs, args)
    for run_dir in run_dirs:
        results, worst = reevaluate(run_dir, device, args.test_batch_size)
        reevaluated.append(results)
        log.log(logging.WARNING if worst > TOLERANCE else logging.INFO,
                "%s: largest difference to results.json %.4f points", run_dir, worst)
        differing += [f"{run_dir} ({worst:.2f} points)"] if worst > TOLERANCE else []
    # Rows are named by folder; two folders of one name (runs/a/gs_lora, runs/b/gs_lora) get a row each.
    runs = list(zip(distinct_row_names([(d.name, d.resolve(), r) for d, r in zip(run_dirs, reevaluated)]), reevaluated))
    for run_dir, own, (name, results) in zip(run_dirs, own_tables, runs):
        folder = add_audits(run_dir, name, results, device, args) if args.audit else run_dir
        if own or folder != run_dir:
            write_tables(folder, [(name, results)])
    if args.table_dir:
        write_tables(Path(args.table_dir), runs)
    for table in (build_table(runs), build_audit_table(runs)):
        print("" if table is None else f"{format_table(table)}\n")
    if differing:
        raise UserError(f"re-evaluated metrics differ from results.json by more than {TOLERANCE} points: "
                        f"{', '.join(differing)}")


if __name__ == "__main__":
    run_main(main, "re-evaluation stopped; the tables written so far are complete, rerun the same command for all")
