"""The continual-forgetting task loop shared by all methods: task -> epoch -> batch, selection, results, resume.

Per task: evaluate, train, keep the selected weights, test, end the method's task, save, rewrite ``results.json``."""
import itertools
import logging
import math
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn
from tqdm import tqdm

from backbone.lora import without_lora
from data.folders import cycle, subset_indices
from data.subsets import few_shot_subset, ratio_subset, seeded_generator
from data.task_plan import Task
from engine.evaluation import evaluate, outside_accuracy
from engine.method import Method, StepInfo, TaskContext
from engine.settings import RunSettings
from model import load_model_weights
from util.checkpoint import load_checkpoint, load_file, save_checkpoint
from util.cost import CostMeter, trainable_summary
from util.distributed import broadcast_from_main, is_main_process, mean_over_processes, progress_off, seed_per_process
from util.errors import UserError, check_finite
from util.files import read_json, write_json
from util.metrics import ClassCounts, h_mean, task_metrics

log = logging.getLogger(__name__)


def task_subsets(data, task: Task, settings: RunSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """The remain and forget training images a method may use in ``task`` (none remain with ``no_retain``)."""
    picked = {"remain": torch.empty(0, dtype=torch.long)}
    sides = (("forget", task.forget),) if settings.no_retain else (("remain", task.remain), ("forget", task.forget))
    for name, classes in sides:
        pool = subset_indices(data.train, classes, data.train_idx)
        if settings.few_shot:
            picked[name] = few_shot_subset(pool, data.train.targets, settings.few_shot_num, settings.seed,
                                           task.index, name)
        else:
            picked[name] = ratio_subset(pool, settings.data_ratio, settings.seed, task.index, name)
    return picked["remain"], picked["forget"]


class Selector:
    """Keeps the trainable weights with the best H on the selection split ('val' or 'test'), or the last ones; ``stale``
    counts the evaluations since H last improved (``--early_stop K`` stops at K)."""

    def __init__(self, method: Method, data, task: Task, settings: RunSettings):
        self.method, self.task, self.settings = method, task, settings
        self.split = data.train if settings.selection == "val" else data.test
        pool = data.val_idx if settings.selection == "val" else None
        self.indices = subset_indices(self.split, task.remain + task.forget, pool)
        self.acc_f_before = self._counts().accuracy(task.forget) if settings.selection != "last" else None
        self.best_score, self.best, self.at = -math.inf, None, None
        self.stale, self.evaluations, self.stopped_early = 0, 0, False

    def _counts(self) -> ClassCounts:
        s = self.settings
        return evaluate(self.method.model, self.split, self.indices, s.test_batch_size, s.device, s.amp)

    def consider(self, step: StepInfo) -> dict[str, float]:
        counts = self._counts()
        acc_f, acc_r = counts.accuracy(self.task.forget), counts.accuracy(self.task.remain)
        score = h_mean(acc_r, self.acc_f_before, acc_f)
        self.evaluations += 1
        if score is not None and score > self.best_score:
            self.best_score, self.best = score, self.method.snapshot()
            self.at = {"epoch": step.epoch, "iteration": step.iteration}
            self.stale = 0
        else:
            self.stale += 1
        return {"acc_f": acc_f, "acc_r": acc_r, "h_mean": score}

    def finish(self, step: StepInfo) -> dict[str, object]:
        """Restores the selected weights; returns how they were chosen."""
        if self.settings.selection == "last":
            return {"rule": "last", "epoch": step.epoch, "iteration": step.iteration}
        self.consider(step)
        if self.best is None:  # H undefined: the selection split lacks the forget or the remain classes
            log.warning("task %d: H is undefined on the %s split; keeping the last weights", self.task.index,
                        self.settings.selection)
            return {"rule": "last", "wanted": self.settings.selection, "epoch": step.epoch, "iteration": step.iteration}
        self.method.restore(self.best)
        stopped = {"stopped_early": self.stopped_early} if self.settings.early_stop else {}
        return {"rule": self.settings.selection, "h_mean": self.best_score, **self.at, **stopped}

    def should_stop(self, losses: dict[str, torch.Tensor]) -> bool:
        """``--early_stop K``: H has not improved for max(K, R * evaluations so far) evaluations and, unless
        ``--early_stop_goal none``, the forgetting goal is met by the last step's losses (averaged over processes under
        torchrun, so that all stop together)."""
        patience = self.settings.early_stop
        if patience:
            patience = max(patience, math.ceil(self.settings.early_stop_growth * self.evaluations))
        if not patience or self.stale < patience:
            return False
        met = self.settings.early_stop_goal == "none" or self.method.forget_goal_met(
            mean_over_processes({k: float(v.detach()) for k, v in losses.items()}))
        self.stopped_early = met
        return met


def task_loaders(ctx: TaskContext) -> dict[str, Iterator]:
    """A one-pass and an endless loader ('<side>_cycle') of each side the task has (no remain with --no_retain, so
    that a method reaching for remain data fails at once)."""
    sides = ("forget",) if ctx.no_retain else ("remain", "forget")
    loaders = {side: ctx.loader(getattr(ctx, f"{side}_idx"), side, sharded=True) for side in sides}
    return loaders | {f"{side}_cycle": cycle(loaders[side]) for side in sides}


def train_task(method: Method, ctx: TaskContext, selector: Selector, settings: RunSettings, run_log
               ) -> tuple[dict[str, object], int]:
    """The epoch and batch loop of one task; returns how the kept weights were selected and the steps taken."""
    method.begin_task(ctx)
    broadcast_from_main(method.optimized_parameters())  # torchrun: every process starts from the same weights
    seed_per_process()
    _, scheduler = method.build_optimizer(ctx)
    loaders = task_loaders(ctx)
    step, index = StepInfo(ctx.task.index, 0, 0), ctx.task.index
    progress = tqdm(desc=f"task {index}", unit="step", total=settings.steps_per_task,
                    disable=progress_off(), leave=False)
    # The method's own count of epochs, or endless when ``steps_per_task`` ends the task.
    for epoch in itertools.count() if settings.steps_per_task else range(method.num_epochs(ctx)):
        step.epoch = epoch
        scheduler.step(epoch)
        means = train_epoch(method, ctx, loaders, scheduler, step, selector, settings, run_log, progress)
        run_log.write(f"task{index}/train", epoch, {"lr": method.optimizer.param_groups[0]["lr"], **means}, task=index)
        progress.set_postfix(epoch=epoch, loss=f"{means.get('total', float('nan')):.3f}")
        if step.iteration == settings.steps_per_task or not means or selector.stopped_early:
            break  # budget spent, a method with nothing to do, or early stopping
    progress.close()
    return selector.finish(step), step.iteration


def train_epoch(method: Method, ctx: TaskContext, loaders, scheduler, step: StepInfo, selector: Selector,
                settings: RunSettings, run_log, progress) -> dict[str, float]:
    """One epoch of method steps (to ``steps_per_task`` or an early stop); returns each loss term's mean."""
    sums, counts = {}, {}  # per loss term: the sum of its values, their number
    for remain, forget in method.batches(ctx, loaders):
        losses = method.training_step(ctx.to_device(remain), ctx.to_device(forget), step)
        check_finite(losses, f"task {step.task}, epoch {step.epoch}")
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach())
            counts[name] = counts.get(name, 0) + 1
        step.iteration += 1
        scheduler.step_update(step.iteration)
        progress.update()
        if settings.selection != "last" and step.iteration % settings.eval_every == 0:
            run_log.write(f"task{step.task}/{settings.selection}", step.iteration, selector.consider(step),
                          task=step.task)
            if selector.should_stop(losses):
                break
        if step.iteration == settings.steps_per_task:
            break
    return mean_over_processes({k: v / counts[k] for k, v in sums.items()})


def run_task(method: Method, data, task: Task, settings: RunSettings, run_log) -> dict[str, object]:
    """Before-evaluation, training, selection, test evaluation and the method's end-of-task step."""
    s, model = settings, method.model
    # Seeded from (seed, task index) before the task draws anything (LoRA initialisation, dropout masks), so a
    # resumed run draws what an uninterrupted one draws.
    torch.manual_seed(seeded_generator(s.seed, "task", task.index).initial_seed())
    before, outside_before = evaluate_test(model, data, s)
    remain_idx, forget_idx = task_subsets(data, task, s)
    ctx = TaskContext(task, data.train, remain_idx, forget_idx, s.batch_size, s.device, s.amp, s.seed,
                      data.num_classes, s.optim.epochs, s.optim, steps=s.steps_per_task, no_retain=s.no_retain)
    meter = CostMeter(s.device).start()
    selection, steps = train_task(method, ctx, Selector(method, data, task, s), s, run_log)
    after, outside_after = evaluate_test(model, data, s)
    trainable = trainable_summary(method.trainable_parameters(), model)
    extras = method.end_task(ctx)
    classes = (task.remain, task.forget, task.old, task.missing)
    entry = {"task": task.index, "num_remain": len(task.remain), "forget_classes": task.forget,
             "forget_names": [data.train.classes[c] for c in task.forget],
             "train_images": {"remain": len(remain_idx), "forget": len(forget_idx)},
             **with_outside(task_metrics(before, after, *classes, "original"), outside_before, outside_after),
             "plain": with_outside(task_metrics(before, after, *classes, "plain"), outside_before, outside_after),
             "selection": selection, "optimizer_steps": steps, **trainable, **meter.stop(), **extras}
    if s.audit:  # imported here: the audits sit above the engine and pull in scikit-learn
        from audit.run import audit_task
        entry["audit"] = audit_task(model, data, task, remain_idx, forget_idx, s)
    run_log.write("test", task.index, {**{k: v for k, v in entry.items() if isinstance(v, float)},
                                       **{f"group_norm_{b}": v for b, v in enumerate(entry.get("group_norms", []))}},
                  task=task.index)
    save_task(method, s, task.index, ctx.artifacts)
    return entry


def evaluate_test(model: nn.Module, data, s: RunSettings) -> tuple[ClassCounts, float | None]:
    """The test split's per-class counts, and Acc_m on the classes outside the run (ImageNet-900) or None."""
    counts = evaluate(model, data.test, torch.arange(len(data.test)), s.test_batch_size, s.device, s.amp)
    outside = getattr(data, "outside", None)
    return counts, None if outside is None else outside_accuracy(model, outside, s.test_batch_size, s.device, s.amp)


def with_outside(metrics: dict[str, object], before, after) -> dict[str, object]:
    """``metrics`` with Acc_m and its before-value from the outside classes, if any (a linear head: no margin)."""
    return metrics if after is None else {**metrics, "acc_m": after, "acc_m_before": before}


def save_task(method: Method, settings: RunSettings, index: int, artifacts: dict[str, dict[str, torch.Tensor]]) -> None:
    """The task's merged weights, the method's state and extra artifacts (LoRA delta); only the main process writes."""
    if not is_main_process():
        return
    files = {"Backbone": {"model": without_lora(method.model.state_dict()), "model_args": settings.model_args,
                          "config": settings.config, "task": index}, "method": method.state_dict(), **artifacts}
    for name, content in files.items():
        save_checkpoint(settings.task_dir / f"{name}_task_{index}.pth", **content)


def plan_record(tasks: list[Task], classes: list[str]) -> list[dict[str, object]]:
    """The task plan for results.json, so re-evaluation uses the classes trained with; forgotten ones also by name."""
    return [{"task": t.index, "remain": t.remain, "forget": t.forget, "old": t.old, "missing": t.missing,
             "forget_names": [classes[c] for c in t.forget]} for t in tasks]


def check_run_folder(outdir: Path, resume: bool, tasks: list[Task] | None = None, classes: list[str] = ()) -> None:
    """A run folder with results is continued only on request, only with the last finished task's checkpoints and,
    given ``tasks``, only with its finished tasks' plan and class names: no two protocols in one table."""
    results_path = outdir / "results.json"
    if not results_path.exists():
        return
    if not resume:
        raise UserError(f"{results_path} exists: pass --resume_run to continue that run, or another --outdir")
    saved = read_json(results_path)
    done = len(saved.get("tasks", []))
    for name in ("Backbone", "method") if done else ():
        path = outdir / "task-level" / f"{name}_task_{done - 1}.pth"
        if not path.is_file():
            raise UserError(f"{results_path} lists task {done - 1} as done but {path} is missing; restore it, or "
                            f"start anew in another --outdir")
    if tasks is None:
        return
    record = plan_record(tasks, classes)
    comparable = [{k: v for k, v in new.items() if k in old} for old, new in zip(saved.get("plan") or [], record)]
    if (len(saved.get("plan") or []) != len(record) or saved["plan"] != comparable
            or saved.get("class_names", list(classes)) != list(classes)):
        raise UserError(f"{results_path} was trained on another task plan than these flags and data give; resume "
                        f"with the run's own flags and data, or use a new --outdir")


def resume_state(method: Method, settings: RunSettings, results_path: Path) -> dict:
    """Loads the finished tasks' results, weights and method state of an interrupted run."""
    saved = read_json(results_path)
    done = len(saved.get("tasks", []))
    if done:
        folder, last = settings.task_dir, done - 1
        load_model_weights(method.model, load_checkpoint(folder / f"Backbone_task_{last}.pth")["model"],
                           f"task {last} checkpoint")
        method.load_state_dict(load_file(folder / f"method_task_{last}.pth"))
        log.info("resuming after task %d", last)
    return {k: v for k, v in saved.items() if k in ("tasks", "pretrained")}


def run_forgetting(method: Method, data, tasks: list[Task], settings: RunSettings, run_log,
                   resume: bool = False) -> dict:
    """Runs every task not yet finished (after the last finished one with ``resume``), rewriting ``results.json``."""
    results_path, classes = settings.outdir / "results.json", list(data.train.classes)
    results = {"method": method.name, "selection": settings.selection, "config": settings.config,
               "no_retain": settings.no_retain, "class_names": classes, "plan": plan_record(tasks, classes),
               "tasks": []}
    check_run_folder(settings.outdir, resume, tasks, classes)
    if results_path.exists():
        results.update(resume_state(method, settings, results_path))
    # The records of a task cut short (task 0 too, killed before results.json existed), so curves are not doubled.
    run_log.drop_tasks_from(len(results["tasks"]))
    if "pretrained" not in results:
        results["pretrained"] = pretrained_accuracies(method.model, data, tasks, settings)
    for task in tasks[len(results["tasks"]):]:
        entry = run_task(method, data, task, settings, run_log)
        results["tasks"].append(entry)
        if is_main_process():
            write_json(results_path, results)
        log.info("task %d: Acc_f %.2f  Acc_r %.2f  H %.2f  (%.0f s)", task.index, entry["acc_f"], entry["acc_r"],
                 entry["h_mean"], entry["wall_time_s"])
    return results


def pretrained_accuracies(model: nn.Module, data, tasks: list[Task], settings: RunSettings) -> dict[str, list[dict]]:
    """The starting model's accuracy on every task's class sets (the tables' 'Pre-train' row), both conventions."""
    counts, outside = evaluate_test(model, data, settings)

    def accuracies(t: Task, convention: str) -> dict[str, object]:
        sets = {"acc_r": t.remain, "acc_f": t.forget, "acc_o": t.old, "acc_m": t.missing}
        values = {k: counts.accuracy(v, convention) for k, v in sets.items()}
        return values if outside is None else {**values, "acc_m": outside}

    return {c: [accuracies(t, c) for t in tasks] for c in ("original", "plain")}
