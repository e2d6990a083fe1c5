"""Build the true oracle of a forgetting run's plan: per task, a model pre-trained from scratch with the -r model's own
recipe on every class but those forgotten up to that task, so it never saw any of them.

    python train_oracle.py --run_dir runs/compare/gs_lora                # -> runs/compare/oracle
    python test_forget_cl.py --run_dir runs/compare/* --audit --audit_oracle runs/compare/oracle

Laid out as a forgetting run (tables show it as a row, --audit_oracle takes it); continual before-values make its H
the score of never having seen the classes. Each task is saved when it ends; --resume_run builds the rest."""
import argparse
import logging
from pathlib import Path

import torch

from config import parse_oracle_args
from data import build_data, resolve_root, without_classes
from data.class_names import class_indices, split_names
from data.task_plan import Task
from engine.evaluation import evaluate
from engine.pretraining import pretrain
from model import build_model, model_from_file
from run_setup import flags_as_json, make_folder, run_main, settings_from_args
from util.checkpoint import load_checkpoint
from util.cost import CostMeter, trainable_summary
from util.device import resolve_device, use_bf16
from util.errors import UserError
from util.files import read_json, read_results, write_json
from util.metrics import ClassCounts, task_metrics
from util.run_lock import lock_run_folder
from util.run_log import RunLog, setup_logging

log = logging.getLogger("train_oracle")

# What the oracle takes from the run it follows: where the data is and how the audits draw their subsets.
FROM_RUN = ("data_root", "cache_dir", "seed", "data_ratio", "few_shot", "few_shot_num", "resume", "num_of_first_cls",
            "per_forget_cls", "num_tasks", "open_cls_num", "test_batch_size", "precision")


def read_run(run_dir: Path) -> dict:
    """The followed run's results.json: its plan, its flags and its pre-trained model's accuracies."""
    results = read_results(run_dir, "--run_dir must be a forgetting run that finished at least one task")
    if not results.get("plan") or not results.get("config", {}).get("resume"):
        raise UserError(f"{run_dir / 'results.json'} holds no task plan or no -r model; the oracle follows a run's "
                        f"plan and recipe")
    return results


def read_recipe(checkpoint_path: str, run_config: dict) -> tuple[dict, dict]:
    """The -r model's pre-training flags and model arguments; a model made elsewhere has no recipe to repeat."""
    checkpoint = load_checkpoint(checkpoint_path)
    recipe = checkpoint.get("config") or {}
    if "epochs" not in recipe or "model_args" not in checkpoint:
        raise UserError(f"{checkpoint_path} holds no pre-training flags (it was not made by train_own.py), so there "
                        f"is no recipe to repeat without the forgotten classes")
    if recipe.get("data_mode") != run_config["data_mode"]:
        raise UserError(f"{checkpoint_path} was pre-trained on {recipe.get('data_mode')} data, the run forgets on "
                        f"{run_config['data_mode']}; the oracle repeats the pre-training on the run's data")
    return recipe, checkpoint["model_args"]


def start_results(outdir: Path, run: dict, config: dict, recipe: dict, resume: bool) -> dict:
    """New results, or the saved ones of an oracle of the same plan and recipe when resuming."""
    fresh = {"method": "oracle", "selection": "val", "config": config, "recipe": recipe, "plan": run["plan"],
             "pretrained": run["pretrained"], "tasks": []}
    path = outdir / "results.json"
    if not path.exists():
        return fresh
    if not resume:
        raise UserError(f"{path} exists: pass --resume_run to build its missing tasks, or another --outdir")
    saved = read_json(path)
    if saved.get("plan") != run["plan"] or saved.get("recipe") != recipe:
        raise UserError(f"{path} is the oracle of another plan or pre-trained model than --run_dir's; pass another "
                        f"--outdir")
    return {**fresh, "tasks": saved["tasks"]}


def train_task_oracle(task: Task, data, recipe: argparse.Namespace, model_args: dict, device: torch.device,
                      outdir: Path, run_log: RunLog) -> tuple[torch.nn.Module, int, dict]:
    """Pre-trains a fresh model (the recipe's initialisation seed) on every class but ``task``'s forgotten and old
    ones; returns it (its selected epoch loaded), the number of images it trained on and its cost."""
    classes = data.train.classes
    recipe_excluded = split_names(vars(recipe).get("exclude_classes") or [])  # older checkpoints lack the flag
    excluded = sorted(set(task.forget + task.old + class_indices(recipe_excluded, classes,
                                                                 "the recipe's --exclude_classes")))
    flags = argparse.Namespace(**{**vars(recipe), "exclude_classes": [classes[c] for c in excluded]})
    settings = settings_from_args(flags, outdir, device, model_args)
    torch.manual_seed(recipe.seed)
    model = build_model(**model_args).to(device)
    meter = CostMeter(device).start()
    seen = without_classes(data, excluded)
    report = pretrain(model, seen, settings, run_log, outdir / "task-level" / f"Backbone_task_{task.index}.pth",
                      task=task.index)
    cost = {"selection": {"rule": "val", "epoch": report["epoch"], "val_acc": report["val_acc"]},
            "optimizer_steps": report["optimizer_steps"], **trainable_summary(model.parameters(), model),
            **meter.stop()}
    return model, len(seen.train_idx), cost


def main() -> None:
    args = parse_oracle_args(__doc__.splitlines()[0])
    setup_logging(args.log_level)
    run_dir = Path(args.run_dir)
    args.outdir = args.outdir or str(run_dir.parent / "oracle")
    outdir = Path(args.outdir)
    lock_run_folder(outdir)
    run = read_run(run_dir)
    recipe, model_args = read_recipe(run["config"]["resume"], run["config"])
    # results.json's config: the recipe's flags, the run's data and subset flags (the audits draw the same images for
    # the oracle as for the run) and the oracle's own.
    config = {**recipe, **{k: run["config"].get(k) for k in FROM_RUN}, "data_root": args.data_root or
              run["config"]["data_root"], "method": "oracle", "run_dir": args.run_dir, "outdir": args.outdir,
              "validation_seed": recipe.get("validation_seed", recipe["seed"]), "recipe_seed": recipe["seed"]}
    results = start_results(outdir, run, config, recipe, args.resume_run)
    if len(results["tasks"]) == len(results["plan"]):  # the scripts call it on every rerun: no data load then
        log.info("%s holds the oracle of every task of the plan: nothing to build", outdir)
        return
    device = resolve_device(args.device)
    flags = argparse.Namespace(**{**recipe, "data_root": config["data_root"], "cache_dir": config["cache_dir"],
                                  "num_workers": args.num_workers, "device": args.device, "outdir": args.outdir})
    root = resolve_root(flags.data_mode, flags.data_root, flags.cache_dir, flags.synthetic_seed)
    data = build_data(root, model_args["image_size"], flags.val_ratio, config["validation_seed"], args.num_workers,
                      flags.data_mode)
    tasks = [Task(t["task"], t["remain"], t["forget"], t["old"], t["missing"]) for t in results["plan"]]
    make_folder(outdir, "--outdir")
    setup_logging(args.log_level, outdir)
    write_json(outdir / "config.json", {**flags_as_json(args), "recipe": recipe})
    run_log = RunLog(outdir, tensorboard=not args.no_tensorboard)
    done = len(results["tasks"])
    run_log.drop_tasks_from(done)
    build_missing(tasks[done:], data, flags, model_args, device, outdir, run_log, results)
    run_log.close()


def build_missing(tasks: list[Task], data, flags: argparse.Namespace, model_args: dict, device: torch.device,
                  outdir: Path, run_log: RunLog, results: dict) -> None:
    """Trains the oracle of every task in ``tasks`` and rewrites results.json after each."""
    bf16 = use_bf16(flags.precision, device)
    test_idx = torch.arange(len(data.test))

    def counts(model) -> ClassCounts:
        return evaluate(model.to(device), data.test, test_idx, flags.test_batch_size or 5 * flags.batch_size,
                        device, bf16)

    previous = (outdir / "task-level" / f"Backbone_task_{tasks[0].index - 1}.pth" if tasks and tasks[0].index
                else Path(results["config"]["resume"]))
    before = counts(model_from_file(previous, data.test.classes, model_args)) if tasks else None
    for task in tasks:
        log.info("task %d: pre-training without %d forgotten classes", task.index, len(task.forget + task.old))
        model, images, cost = train_task_oracle(task, data, flags, model_args, device, outdir, run_log)
        after, classes = counts(model), (task.remain, task.forget, task.old, task.missing)
        # The keys of a forgetting run's entry (no forget image: none is trained on).
        entry = {"task": task.index, "num_remain": len(task.remain), "forget_classes": task.forget,
                 "train_images": {"remain": images, "forget": 0}, **task_metrics(before, after, *classes, "original"),
                 "plain": task_metrics(before, after, *classes, "plain"), **cost}
        results["tasks"].append(entry)
        write_json(outdir / "results.json", results)
        log.info("task %d: Acc_f %.2f  Acc_r %.2f  H %.2f  (%.0f s)", task.index, entry["acc_f"], entry["acc_r"],
                 entry["h_mean"], entry["wall_time_s"])
        before = after


if __name__ == "__main__":
    run_main(main, "finished oracle tasks are saved; rerun with --resume_run to build the rest")
