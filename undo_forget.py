"""Undo a forgetting request: a GS-LoRA run's final model with one task's LoRA update subtracted.

    python undo_forget.py --run_dir runs/compare/gs_lora --task 3      # exact: the model from before task 3
    python undo_forget.py --run_dir runs/compare/gs_lora --task 1      # approximate: tasks 0, 2, 3 kept
    python undo_forget.py --run_dir runs/named --forget_class 0000045  # the task whose request named 0000045

Writes a checkpoint (default RUN/undo/Backbone_without_task_T.pth) and, unless --no_eval, a .json report beside it:
accuracies per class set of the models before task T, final and undone, and weight distances. Never overwrites."""
import logging
from pathlib import Path

import torch

from config import EVALUATION_FLAGS, SWITCH, OneLineParser, add_flags, at_least
from data import build_data, resolve_root
from engine import undo
from run_setup import make_folder, run_main
from util.checkpoint import load_checkpoint, save_checkpoint
from util.device import resolve_device, use_bf16
from util.errors import UserError
from util.files import write_json
from util.run_lock import lock_run_folder
from util.run_log import setup_logging

log = logging.getLogger("undo_forget")


def parse_undo_args(argv: list[str] | None = None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True, help="a GS-LoRA(++) run folder (results.json, task-level/)")
    add_flags(parser.add_mutually_exclusive_group(required=True), [
        ("--task", at_least(0), None, "index of the finished task to undo"),
        ("--forget_class", None, None, "undo the task that forgot this class folder name", {"metavar": "NAME"})])
    add_flags(parser, [
        ("--out", None, None, "checkpoint (.pth; default RUN/undo/Backbone_without_task_T.pth), never overwritten"),
        ("--no_eval", SWITCH, False, "only write the checkpoint; no test evaluation"),
        ("--convention", None, "original", "accuracy convention of the report (see docs/forgetting.md, Metrics)",
         {"choices": ["original", "plain"]}), *EVALUATION_FLAGS])
    return parser.parse_args(argv)


def output_paths(run_dir: Path, task: int, out: str | None, report: bool) -> tuple[Path, Path | None]:
    """The checkpoint to write and, with ``report``, the report beside it (.json), both checked before anything is
    written: a report could overwrite the run's results.json (``--out RUN/results.pth``) or the checkpoint itself."""
    checkpoint = Path(out) if out else run_dir / "undo" / f"Backbone_without_task_{task}.pth"
    if checkpoint.suffix.lower() == ".json":
        raise UserError(f"--out {checkpoint}: a checkpoint's report is its name ending in .json, here the "
                        f"checkpoint itself; name the checkpoint .pth")
    report_path = checkpoint.with_suffix(".json") if report else None
    lock_run_folder(checkpoint.parent, "--out")  # two undos into one folder must not both find the names free
    for path in (checkpoint, report_path):
        if path is not None and path.exists():
            raise UserError(f"{path} exists; pass another --out or remove it (nothing is overwritten)")
    return checkpoint, report_path


def evaluate_undo(run_dir: Path, content: dict, device: torch.device, batch_size: int, convention: str) -> dict:
    """Accuracies per class set of the models before the task, final and undone; the undone one's weight distances."""
    results, done = undo.finished_tasks(run_dir)
    cfg, model_args, task = results["config"], content["model_args"], content["undo"]["task"]
    root = resolve_root(cfg["data_mode"], cfg["data_root"], cfg["cache_dir"], cfg["synthetic_seed"])
    data = build_data(root, model_args["image_size"], cfg["val_ratio"], cfg["seed"], cfg.get("num_workers", 4),
                      cfg["data_mode"])
    saved = [(f"after task {i}", load_checkpoint(run_dir / "task-level" / f"Backbone_task_{i}.pth")["model"])
             for i in range(done)]  # the merged weights of every finished task
    pretrained = undo.pretrained_state(cfg["resume"], model_args, data.test.classes) if cfg.get("resume") else None
    before = saved[task - 1][1] if task else pretrained  # a run started without -r has no pre-trained file
    exact = ([("pre-trained", pretrained)] if pretrained is not None else []) + saved
    models = ([(f"before task {task}", before)] if before is not None else []) + [
        (f"final (after task {done - 1})", saved[-1][1]), (f"task {task} undone", content["model"])]
    plan = results["plan"]  # the class sets: the classes each finished task forgot, and those still remembered
    sets = {f"forgotten in task {t}{' (undone)' if t == task else ''}": plan[t]["forget"] for t in range(done)}
    sets["remembered"] = plan[done - 1]["remain"]
    amp = use_bf16(cfg.get("precision", "auto"), device)
    accuracy = {name: undo.class_set_accuracies(state, model_args, data.test, sets, device, batch_size, amp, convention)
                for name, state in models}
    distance = {name: undo.relative_distance(content["model"], state) for name, state in exact}
    return {"run_dir": str(run_dir), "task": task, "exact": content["undo"]["exact"], "convention": convention,
            "accuracy": accuracy, "weight_distance": distance}


def format_report(report: dict) -> str:
    """The accuracy table (class sets x models) and the weight distances, nearest model marked."""
    accuracy, distance = report["accuracy"], report["weight_distance"]  # accuracy: model -> class set -> %
    sets = next(iter(accuracy.values()))
    width = max(map(len, sets)) + 2
    lines = [f"Acc ({report['convention']} convention, %)".ljust(width) + "".join(f"{m:>24}" for m in accuracy)]
    lines += [name.ljust(width) + "".join(f"{accuracy[m][name]:>24.2f}" for m in accuracy) for name in sets]
    nearest = min(distance, key=distance.get)
    lines.append("weight distance ||W_undone - W||_F / ||W||_F:")
    lines += [f"  {name:<22}{value:.3e}{'  <- nearest' if name == nearest else ''}" for name, value in distance.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_undo_args(argv)
    setup_logging(args.log_level)
    run_dir = Path(args.run_dir)
    task = args.task if args.forget_class is None else undo.task_that_forgot(run_dir, args.forget_class)
    out, report_path = output_paths(run_dir, task, args.out, report=not args.no_eval)
    content = undo.undo_task(run_dir, task)
    make_folder(out.parent, "--out")
    save_checkpoint(out, **content)
    kind = "exact" if content["undo"]["exact"] else "approximate: later tasks' updates kept"
    print(f"wrote {out}: the final model of {run_dir} without task {task} ({kind})")
    if args.no_eval:
        return
    report = evaluate_undo(run_dir, content, resolve_device(args.device), args.test_batch_size, args.convention)
    write_json(report_path, report)
    print(format_report(report))


if __name__ == "__main__":
    run_main(main, interrupted="the undone checkpoint, if written, is complete")
