"""Re-evaluate the saved task checkpoints of one or more runs and print the paper-style table.

    python test_forget_cl.py --run_dir runs/quickstart/gs_lora runs/quickstart/gs_lora_pp

Each task's checkpoint is loaded into a model without LoRA (merged weights only), so nothing is applied twice.
Every metric is recomputed from the checkpoints (before-values of task i from the checkpoint of task i-1, or the
run's -r checkpoint for task 0) and compared with the run's results.json; cost columns come from results.json.
Writes table.csv and table.md into each run folder (and the combined table with --table_dir).
"""
import functools
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from config import parse_eval_args
from data import build_data, resolve_root
from data.task_plan import Task
from engine.evaluation import OutsideClasses, evaluate, outside_accuracy
from engine.forgetting import with_outside
from model import build_model, load_model_weights, pretrained_weights
from run_setup import outside_classes, run_main
from util.checkpoint import load_checkpoint
from util.device import resolve_device, use_bf16
from util.errors import UserError
from util.files import read_json
from util.metrics import task_metrics
from util.run_log import setup_logging
from util.table import build_table, csv_table, format_table, markdown_table

log = logging.getLogger("test_forget_cl")

# Re-evaluation repeats the run's own evaluation, so only floating-point noise may differ (accuracy points).
TOLERANCE = 0.01


@functools.lru_cache(maxsize=2)
def cached_data(root: Path, image_size: int, val_ratio: float, seed: int, data_mode: str, workers: int):
    """Runs of one comparison share their dataset: decode it once."""
    return build_data(root, image_size, val_ratio, seed, workers, data_mode)


def counts_of(path: Path, data, model_args: Dict, device: torch.device, batch_size: int, bf16: bool,
              outside: Optional[OutsideClasses] = None):
    """Per-class test counts of a checkpoint and its Acc_m on the outside classes (None without them).

    A file without model arguments (the run's -r: an original face checkpoint, a torchvision ViT-B/16 file) is built
    with the run's ``model_args`` and converted, its ImageNet head cut to the dataset's classes."""
    checkpoint = load_checkpoint(path)
    model = build_model(**checkpoint.get("model_args", model_args))
    load_model_weights(model, pretrained_weights(checkpoint["model"], data.test.classes)[0], str(path))
    model.to(device)
    accuracy = outside_accuracy(model, outside, batch_size, device, bf16) if outside else None
    return evaluate(model, data.test, torch.arange(len(data.test)), batch_size, device, bf16), accuracy


def difference(fresh, saved) -> float:
    """Accuracy points between a recomputed and a saved metric; a value present on one side only never agrees."""
    if fresh is None or saved is None:
        return 0.0 if fresh is saved else math.inf
    return abs(fresh - saved)


def saved_plan(results: Dict, results_path: Path) -> List[Task]:
    """The task plan the run trained with, as written into its results.json."""
    if "plan" not in results:
        raise UserError(f"{results_path} has no task plan (written by an older version); rerun the forgetting run")
    return [Task(t["task"], t["remain"], t["forget"], t["old"], t["missing"]) for t in results["plan"]]


def reevaluate(run_dir: Path, device: torch.device, batch_size: int) -> Tuple[Dict, float]:
    """Recomputes a run's per-task metrics from its checkpoints.

    Returns results.json's content with the recomputed metrics, and the largest difference to the saved ones
    (accuracy points).
    """
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise UserError(f"{results_path} not found: is {run_dir} a run folder of train_own_forget_cl.py?")
    results = read_json(results_path)
    cfg = results["config"]
    tasks = saved_plan(results, results_path)
    first = load_checkpoint(run_dir / "task-level" / "Backbone_task_0.pth")
    root = resolve_root(cfg["data_mode"], cfg["data_root"], cfg["cache_dir"], cfg["synthetic_seed"])
    data = cached_data(root, first["model_args"]["image_size"], cfg["val_ratio"], cfg["seed"], cfg["data_mode"],
                       cfg.get("num_workers", 4))
    bf16 = use_bf16(cfg.get("precision", "auto"), device)  # the run's own precision, so the numbers agree
    outside = None
    if cfg.get("imagenet900_root"):  # the same outside set and full head as the run
        full_head = pretrained_weights(load_checkpoint(cfg["resume"])["model"], data.test.classes)[1]
        outside = outside_classes(Path(cfg["imagenet900_root"]), full_head, first["model_args"]["image_size"],
                                  cfg.get("num_workers", 4), cfg["resume"])
    evaluate_file = functools.partial(counts_of, data=data, model_args=first["model_args"], device=device,
                                      batch_size=batch_size, bf16=bf16, outside=outside)
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


def main() -> None:
    args = parse_eval_args(__doc__.splitlines()[0])
    setup_logging(args.log_level)
    device = resolve_device(args.device)
    runs, differing = {}, []
    for run_dir in args.run_dir:
        runs[Path(run_dir).name], worst = reevaluate(Path(run_dir), device, args.test_batch_size)
        (log.warning if worst > TOLERANCE else log.info)(
            "%s: largest difference to results.json %.4f points", run_dir, worst)
        if worst > TOLERANCE:
            differing.append(f"{run_dir} ({worst:.2f} points)")
    for run_dir, (name, results) in zip(args.run_dir, runs.items()):
        single = build_table([(name, results)])
        (Path(run_dir) / "table.csv").write_text(csv_table(single))
        (Path(run_dir) / "table.md").write_text(markdown_table(single))
    table = build_table(list(runs.items()))
    if args.table_dir:
        Path(args.table_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.table_dir) / "table.csv").write_text(csv_table(table))
        (Path(args.table_dir) / "table.md").write_text(markdown_table(table))
    print(format_table(table))
    if differing:
        raise UserError(f"re-evaluated metrics differ from results.json by more than {TOLERANCE} points: "
                        f"{', '.join(differing)}")


if __name__ == "__main__":
    run_main(main)
