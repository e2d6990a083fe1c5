"""Re-evaluate the saved task checkpoints of one or more runs and print the paper-style table.

    python test_forget_cl.py --run_dir runs/quickstart/gs_lora runs/quickstart/gs_lora_pp

Each task's checkpoint is loaded into a model without LoRA (merged weights only), so nothing is applied twice.
Every metric is recomputed from the checkpoints (before-values of task i from the checkpoint of task i-1, or the
run's -r checkpoint for task 0) and compared with the run's results.json; cost columns come from results.json.
Writes table.csv and table.md into each run folder (and the combined table with --table_dir).
"""
import functools
import json
import logging
from pathlib import Path
from typing import Dict

import torch

from backbone import build_model
from config import parse_eval_args
from data import build_data, resolve_root
from data.class_order import class_order
from data.task_plan import plan_tasks
from engine import evaluate
from util.checkpoint import load_checkpoint, load_model_weights
from util.device import resolve_device, use_bf16
from util.errors import UserError
from util.metrics import task_metrics
from util.run_log import setup_logging
from util.run_setup import run_main
from util.table import csv_table, format_table, markdown_table

log = logging.getLogger("test_forget_cl")


@functools.lru_cache(maxsize=2)
def cached_data(root: Path, image_size: int, val_ratio: float, seed: int):
    """Runs of one comparison share their dataset: decode it once."""
    return build_data(root, image_size, val_ratio, seed)


def counts_of(path: Path, data, device: torch.device, batch_size: int, bf16: bool):
    checkpoint = load_checkpoint(path)
    model = build_model(**checkpoint["model_args"])
    load_model_weights(model, checkpoint["model"], str(path))
    return evaluate(model.to(device), data.test, torch.arange(len(data.test)), batch_size, device, bf16)


def reevaluate(run_dir: Path, device: torch.device, batch_size: int) -> Dict:
    """Recomputes a run's per-task metrics from its checkpoints; returns results.json's content, updated."""
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise UserError(f"{results_path} not found: is {run_dir} a run folder of train_own_forget_cl.py?")
    results = json.loads(results_path.read_text())
    cfg = results["config"]
    first = load_checkpoint(run_dir / "task-level" / "Backbone_task_0.pth")
    root = resolve_root(cfg["data_mode"], cfg["data_root"], cfg["cache_dir"], cfg["synthetic_seed"])
    data = cached_data(root, first["model_args"]["image_size"], cfg["val_ratio"], cfg["seed"])
    tasks = plan_tasks(class_order(data.num_classes, cfg["seed"]), cfg["num_of_first_cls"], cfg["per_forget_cls"],
                       cfg["num_tasks"], cfg["open_cls_num"], single_step_layout=cfg["num_tasks"] == 1)
    bf16 = use_bf16(cfg.get("precision", "auto"), device)  # the run's own precision, so the numbers agree
    before = counts_of(Path(cfg["resume"]), data, device, batch_size, bf16) if cfg.get("resume") else None
    worst = 0.0
    for saved in results["tasks"]:
        task = tasks[saved["task"]]
        after = counts_of(run_dir / "task-level" / f"Backbone_task_{task.index}.pth", data, device, batch_size, bf16)
        if before is not None:
            classes = (task.remain, task.forget, task.old, task.missing)
            fresh = task_metrics(before, after, *classes, "original")
            worst = max([worst] + [abs(fresh[k] - saved[k]) for k in fresh if fresh[k] is not None])
            saved.update(fresh, plain=task_metrics(before, after, *classes, "plain"))
        before = after
    log.info("%s: largest difference to results.json %.4f points", run_dir, worst)
    return results


def main() -> None:
    args = parse_eval_args(__doc__.splitlines()[0])
    setup_logging(args.log_level)
    device = resolve_device(args.device)
    runs = {Path(d).name: reevaluate(Path(d), device, args.test_batch_size) for d in args.run_dir}
    for run_dir, results in zip(args.run_dir, runs.values()):
        single = {Path(run_dir).name: results}
        (Path(run_dir) / "table.csv").write_text(csv_table(single))
        (Path(run_dir) / "table.md").write_text(markdown_table(single))
    if args.table_dir:
        Path(args.table_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.table_dir) / "table.csv").write_text(csv_table(runs))
        (Path(args.table_dir) / "table.md").write_text(markdown_table(runs))
    print(format_table(runs))


if __name__ == "__main__":
    run_main(main)
