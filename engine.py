"""The training engine: the Method interface, evaluation, and the task -> epoch -> batch loop shared by all methods.

Every forgetting method (GS-LoRA in gs_lora.py, each baseline in baselines/) is a ``Method`` subclass registered in
``METHODS``. The engine never asks which method runs: it calls the hooks below, evaluates, selects the
checkpoint, measures cost and writes the results. Pre-training (train_own.py) reuses the evaluation and the epoch
loop.
"""
import copy
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from tqdm import tqdm

from backbone.lora import without_lora
from data.folders import BatchLoader, ImageTensors, cycle, subset_indices
from data.subsets import few_shot_subset, ratio_subset
from data.task_plan import Task
from util.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from util.cost import CostMeter, trainable_summary
from util.device import autocast
from util.errors import UserError
from util.metrics import ClassCounts, count_correct, h_mean, task_metrics
from util.registry import Registry

log = logging.getLogger(__name__)

METHODS = Registry("method")
Batch = Tuple[torch.Tensor, torch.Tensor]


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the message names the task, epoch and loss term."""


@dataclass
class OptimConfig:
    """What the timm optimizer and cosine scheduler need, per task."""

    opt: str = "adamw"
    lr: float = 5e-4
    weight_decay: float = 0.05
    opt_eps: float = 1e-8
    opt_betas: Optional[List[float]] = None
    momentum: float = 0.9
    epochs: int = 100
    min_lr: float = 1e-5
    warmup_epochs: int = 0
    warmup_lr: float = 1e-6


@dataclass
class TaskContext:
    """What a method sees of the current task: its classes, training subsets, loaders and device."""

    task: Task
    train: ImageTensors
    remain_idx: torch.Tensor
    forget_idx: torch.Tensor
    batch_size: int
    device: torch.device
    amp: bool
    seed: int
    num_classes: int
    epochs: int
    optim: OptimConfig
    artifacts: Dict[str, Dict[str, torch.Tensor]] = field(default_factory=dict)

    def loader(self, indices: torch.Tensor, tag: str, shuffle: bool = True,
               batch_size: Optional[int] = None) -> BatchLoader:
        return BatchLoader(self.train, indices, batch_size or self.batch_size, shuffle=shuffle, seed=self.seed,
                           tag=f"task{self.task.index}-{tag}")

    def to_device(self, batch: Optional[Batch]) -> Optional[Batch]:
        """Moves an (images, labels) batch to the device; None (a step without that side) stays None."""
        if batch is None:
            return None
        return batch[0].to(self.device, non_blocking=True), batch[1].to(self.device, non_blocking=True)


@dataclass
class StepInfo:
    task: int
    epoch: int
    iteration: int


class Method:
    """Base class of every forgetting method; the hook contract the engine relies on.

    Per task the engine calls, in order: ``begin_task(ctx)`` (after the before-evaluation: fresh LoRA, a teacher
    copy, importance...), ``build_optimizer(ctx)``, then for every epoch ``batches(ctx)`` and for each yielded
    (remain, forget) pair ``training_step`` (which by default runs ``compute_loss``, backward and one optimizer
    step, and returns the named losses with 'total'), then ``end_task(ctx)`` after the selected weights are
    restored and tested (merge LoRA, update importance); what it returns goes into the task's results.
    ``trainable_parameters()`` names what the optimizer updates and what is counted as trainable; the weights
    selected during a task are snapshots of exactly these. ``state_dict``/``load_state_dict`` carry what must
    survive between tasks (importance terms, teachers) so that a run can resume.
    """

    name = "method"

    def __init__(self, model: nn.Module):
        self.model = model
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.ctx: Optional[TaskContext] = None

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Adds the method's own flags (an argument group) to the shared parser."""

    @classmethod
    def check_arguments(cls, parser, args) -> None:
        """Rejects bad flag combinations with ``parser.error``."""

    @classmethod
    def from_args(cls, model: nn.Module, args) -> "Method":
        """The adapter from the parsed flags to the constructor's explicit keywords."""
        return cls(model)

    def trainable_parameters(self) -> List[nn.Parameter]:
        """Default for full fine-tuning baselines: the whole backbone; the head stays frozen (reference 1.7)."""
        return list(self.model.backbone.parameters())

    def optimized_parameters(self) -> List[nn.Parameter]:
        """What the optimizer updates and selection snapshots: the model's trainable parameters plus any
        auxiliary module a method trains outside the model (LIRF's deposit). Default: ``trainable_parameters``."""
        return self.trainable_parameters()

    def freeze(self) -> None:
        """Sets requires_grad to match ``trainable_parameters``."""
        trainable = {id(p) for p in self.trainable_parameters()}
        for p in self.all_parameters():
            p.requires_grad_(id(p) in trainable)

    def all_parameters(self) -> List[nn.Parameter]:
        return list(self.model.parameters())

    def begin_task(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.freeze()

    def autocast(self):
        """bf16 autocast on CUDA (unless disabled) for the forward passes of a step."""
        return autocast(self.ctx.device, self.ctx.amp)

    def build_optimizer(self, ctx: TaskContext) -> Tuple[torch.optim.Optimizer, CosineLRScheduler]:
        """A fresh timm optimizer (weight decay on matrices only) and per-epoch cosine schedule."""
        o = ctx.optim
        params = [p for p in self.optimized_parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": o.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        extra = {"betas": tuple(o.opt_betas)} if o.opt_betas else {}
        if o.opt in ("sgd", "momentum", "nesterov"):
            extra["momentum"] = o.momentum
        self.optimizer = create_optimizer_v2([g for g in groups if g["params"]], opt=o.opt, lr=o.lr,
                                             weight_decay=o.weight_decay, eps=o.opt_eps, **extra)
        scheduler = CosineLRScheduler(self.optimizer, t_initial=o.epochs, lr_min=o.min_lr, warmup_t=o.warmup_epochs,
                                      warmup_lr_init=o.warmup_lr)
        return self.optimizer, scheduler

    def num_epochs(self, ctx: TaskContext) -> int:
        """Epochs of the task's loop (SCRUB counts its own super-epochs)."""
        return ctx.epochs

    def batches(self, ctx: TaskContext, loaders: Dict[str, Iterator]) -> Iterator[Tuple[Batch, Batch]]:
        """One epoch of (remain, forget) pairs: a pass over the remain data, forget batches cycled.

        ``loaders`` holds 'remain' and 'forget' (one pass each) and 'remain_cycle' and 'forget_cycle' (endless).
        A method may yield None for a side it does not use in a step.
        """
        for remain in loaders["remain"]:
            yield remain, next(loaders["forget_cycle"])

    def compute_loss(self, remain: Batch, forget: Batch, step: StepInfo) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def training_step(self, remain: Batch, forget: Batch, step: StepInfo) -> Dict[str, torch.Tensor]:
        with self.autocast():
            losses = self.compute_loss(remain, forget, step)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        return losses

    def end_task(self, ctx: TaskContext) -> Dict[str, object]:
        return {}

    def state_dict(self) -> Dict[str, object]:
        return {}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        """Restores what ``state_dict`` saved."""

    def snapshot(self) -> List[torch.Tensor]:
        return [p.detach().clone() for p in self.optimized_parameters()]

    @torch.no_grad()
    def restore(self, snapshot: List[torch.Tensor]) -> None:
        for p, saved in zip(self.optimized_parameters(), snapshot):
            p.copy_(saved)


def check_finite(losses: Dict[str, torch.Tensor], where: str) -> None:
    """Stops the run with one line naming the task, epoch and loss term. Costs one device sync per step."""
    for name, value in losses.items():
        value = float(value.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"{where}: loss term '{name}' is {value}; lower --lr or the loss weights")


def wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly drawn label different from each true one, among all ``num_classes`` classes (reproducible)."""
    offsets = torch.randint(1, num_classes, labels.shape, generator=generator).to(labels.device)
    return (labels + offsets) % num_classes


def cross_entropy_pair(model: nn.Module, remain: Batch, forget: Batch) -> Tuple[torch.Tensor, ...]:
    """One forward pass over remain and forget images together (dropout is per sample, so this equals two passes).

    Returns the remain and forget margin logits and embeddings: (logits_r, logits_f, emb_r, emb_f).
    """
    n = remain[0].shape[0]
    logits, emb = model(torch.cat([remain[0], forget[0]]), torch.cat([remain[1], forget[1]]))
    return logits[:n], logits[n:], emb[:n], emb[n:]


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageTensors, indices: torch.Tensor, batch_size: int, device: torch.device,
             amp: bool = False) -> ClassCounts:
    """Per-class correct counts under both accuracy conventions over ``data[indices]``, in one pass."""
    was_training = model.training
    model.eval()
    num_classes = len(data.classes)
    totals = {k: torch.zeros(num_classes, dtype=torch.int64) for k in ("total", "plain", "original")}
    for images, labels in BatchLoader(data, indices, batch_size):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp):
            plain = model.head.plain_logits(model.backbone(images))
        margin = model.head.apply_margin(plain.float(), labels)
        for key, value in count_correct(plain.float(), margin, labels, num_classes).items():
            totals[key] += value.cpu()
    model.train(was_training)
    return ClassCounts(totals.pop("total"), totals)


@torch.no_grad()
def class_mean_embeddings(model: nn.Module, data: ImageTensors, indices: torch.Tensor, batch_size: int,
                          device: torch.device, amp: bool = False) -> Dict[int, torch.Tensor]:
    """Mean embedding of every class present in ``data[indices]``, in eval mode (the GS-LoRA++ prototypes)."""
    was_training = model.training
    model.eval()
    sums: Dict[int, torch.Tensor] = {}
    counts: Dict[int, int] = {}
    for images, labels in BatchLoader(data, indices, batch_size):
        with autocast(device, amp):
            emb = model.backbone(images.to(device)).float().cpu()
        for c in labels.unique().tolist():
            mask = labels == c
            sums[c] = sums.get(c, 0) + emb[mask].sum(0)
            counts[c] = counts.get(c, 0) + int(mask.sum())
    model.train(was_training)
    return {c: sums[c] / counts[c] for c in sums}


def train_supervised_epoch(model: nn.Module, loader: BatchLoader, optimizer: torch.optim.Optimizer,
                           device: torch.device, amp: bool, where: str,
                           on_step: Optional[Callable[[Dict[str, float]], None]] = None) -> Dict[str, float]:
    """One epoch of cross-entropy on margin logits (pre-training and Retrain); returns mean loss and accuracy."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp):
            logits, _ = model(images, labels)
        loss = F.cross_entropy(logits.float(), labels)
        check_finite({"ce": loss}, where)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        if on_step is not None:
            on_step({"loss": float(loss.detach())})
    return {"loss": loss_sum / seen, "train_acc": 100.0 * correct / seen}


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off: a teacher for distillation-based methods."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@dataclass
class RunSettings:
    """Everything the task loop needs besides the method, the data and the plan."""

    outdir: Path
    batch_size: int
    test_batch_size: int
    device: torch.device
    amp: bool
    seed: int
    optim: OptimConfig
    data_ratio: float = 0.1
    few_shot: bool = False
    few_shot_num: int = 4
    selection: str = "val"
    eval_every: int = 100
    model_args: Dict[str, object] = field(default_factory=dict)
    config: Dict[str, object] = field(default_factory=dict)

    @property
    def task_dir(self) -> Path:
        return self.outdir / "task-level"


def task_subsets(data, task, s: RunSettings) -> Tuple[torch.Tensor, torch.Tensor]:
    """The remain and forget training images a method may use in ``task`` (data-ratio or few-shot subsets)."""
    picked = []
    for name, classes in (("remain", task.remain), ("forget", task.forget)):
        pool = subset_indices(data.train, classes, data.train_idx)
        if s.few_shot:
            picked.append(few_shot_subset(pool, data.train.targets, s.few_shot_num, s.seed, task.index, name))
        else:
            picked.append(ratio_subset(pool, s.data_ratio, s.seed, task.index, name))
    return picked[0], picked[1]


class Selector:
    """Keeps the trainable weights with the best H on the selection split ('val' or 'test'), or the last ones."""

    def __init__(self, method: Method, data, task, s: RunSettings):
        self.method, self.task, self.s = method, task, s
        self.split = data.train if s.selection == "val" else data.test
        pool = data.val_idx if s.selection == "val" else None
        self.indices = subset_indices(self.split, task.remain + task.forget, pool)
        self.acc_f_before = self._counts().accuracy(task.forget) if s.selection != "last" else None
        self.best_score, self.best, self.at = -math.inf, None, None

    def _counts(self) -> ClassCounts:
        return evaluate(self.method.model, self.split, self.indices, self.s.test_batch_size, self.s.device, self.s.amp)

    def consider(self, step: StepInfo) -> Dict[str, float]:
        counts = self._counts()
        acc_f, acc_r = counts.accuracy(self.task.forget), counts.accuracy(self.task.remain)
        score = h_mean(acc_r, self.acc_f_before, acc_f)
        if score is not None and score > self.best_score:
            self.best_score, self.best = score, self.method.snapshot()
            self.at = {"epoch": step.epoch, "iteration": step.iteration}
        return {"acc_f": acc_f, "acc_r": acc_r, "h_mean": score}

    def finish(self, step: StepInfo) -> Dict[str, object]:
        """Restores the selected weights; returns how they were chosen."""
        if self.s.selection == "last":
            return {"rule": "last", "epoch": step.epoch, "iteration": step.iteration}
        self.consider(step)
        self.method.restore(self.best)
        return {"rule": self.s.selection, "h_mean": self.best_score, **self.at}


def train_task(method: Method, ctx: TaskContext, selector: Selector, s: RunSettings, run_log) -> Dict[str, object]:
    """The epoch and batch loop of one task; returns how the kept weights were selected."""
    method.begin_task(ctx)
    _, scheduler = method.build_optimizer(ctx)
    loaders = {"remain": ctx.loader(ctx.remain_idx, "remain"), "forget": ctx.loader(ctx.forget_idx, "forget")}
    loaders.update(remain_cycle=cycle(loaders["remain"]), forget_cycle=cycle(loaders["forget"]))
    step = StepInfo(ctx.task.index, 0, 0)
    progress = tqdm(desc=f"task {ctx.task.index}", unit="step", disable=None, leave=False)
    for epoch in range(method.num_epochs(ctx)):
        step.epoch = epoch
        scheduler.step(epoch)
        sums: Dict[str, float] = {}
        counts: Dict[str, int] = {}
        for remain, forget in method.batches(ctx, loaders):
            losses = method.training_step(ctx.to_device(remain), ctx.to_device(forget), step)
            check_finite(losses, f"task {ctx.task.index}, epoch {epoch}")
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
                counts[name] = counts.get(name, 0) + 1
            step.iteration += 1
            progress.update()
            if s.selection != "last" and step.iteration % s.eval_every == 0:
                run_log.write(f"task{ctx.task.index}/{s.selection}", step.iteration, selector.consider(step))
        epoch_losses = {k: v / counts[k] for k, v in sums.items()}
        run_log.write(f"task{ctx.task.index}/train", epoch, {"lr": method.optimizer.param_groups[0]["lr"],
                                                               **epoch_losses})
        progress.set_postfix(epoch=epoch, loss=f"{epoch_losses.get('total', float('nan')):.3f}")
    progress.close()
    return selector.finish(step)


def run_task(method: Method, data, task, s: RunSettings, run_log) -> Dict[str, object]:
    """Before-evaluation, training, selection, test evaluation and the method's end-of-task step."""
    model = method.model
    test_idx = torch.arange(len(data.test))
    before = evaluate(model, data.test, test_idx, s.test_batch_size, s.device, s.amp)
    remain_idx, forget_idx = task_subsets(data, task, s)
    ctx = TaskContext(task, data.train, remain_idx, forget_idx, s.batch_size, s.device, s.amp, s.seed,
                      data.num_classes, s.optim.epochs, s.optim)
    meter = CostMeter(s.device)
    meter.start()
    selector = Selector(method, data, task, s)
    selection = train_task(method, ctx, selector, s, run_log)
    after = evaluate(model, data.test, test_idx, s.test_batch_size, s.device, s.amp)
    trainable = trainable_summary(method.trainable_parameters(), model)
    extras = method.end_task(ctx)
    classes = (task.remain, task.forget, task.old, task.missing)
    entry = {"task": task.index, "num_remain": len(task.remain), "forget_classes": task.forget,
             "train_images": {"remain": len(remain_idx), "forget": len(forget_idx)},
             **task_metrics(before, after, *classes, "original"),
             "plain": task_metrics(before, after, *classes, "plain"),
             "selection": selection, **trainable, **meter.stop(), **extras}
    run_log.write("test", task.index, {**{k: v for k, v in entry.items() if isinstance(v, float)},
                                       **{f"group_norm_{b}": v for b, v in enumerate(entry.get("group_norms", []))}})
    save_task(method, s, task.index, ctx.artifacts)
    return entry


def save_task(method: Method, s: RunSettings, index: int, artifacts: Dict[str, Dict[str, torch.Tensor]]) -> None:
    """The task's merged weights as a plain state dict, the method's state, and extra artifacts (LoRA delta)."""
    save_checkpoint(s.task_dir / f"Backbone_task_{index}.pth", model=without_lora(method.model.state_dict()),
                    model_args=s.model_args, config=s.config, task=index)
    save_checkpoint(s.task_dir / f"method_task_{index}.pth", **method.state_dict())
    for name, tensors in artifacts.items():
        save_checkpoint(s.task_dir / f"{name}_task_{index}.pth", **tensors)


def run_forgetting(method: Method, data, tasks: List, s: RunSettings, run_log, resume: bool = False) -> Dict:
    """Runs every task not yet finished; ``results.json`` is rewritten as soon as each task ends.

    With ``resume`` the run continues after its last finished task, from that task's saved weights and method
    state; otherwise an existing results file in the run folder is an error (nothing is overwritten).
    """
    results_path = s.outdir / "results.json"
    results = {"method": method.name, "selection": s.selection, "config": s.config, "tasks": []}
    if results_path.exists():
        if not resume:
            raise UserError(f"{results_path} exists: pass --resume_run to continue that run, or another --outdir")
        results.update({k: v for k, v in json.loads(results_path.read_text()).items() if k in ("tasks", "pretrained")})
        done = len(results["tasks"])
        if done:
            last = load_checkpoint(s.task_dir / f"Backbone_task_{done - 1}.pth")
            load_model_weights(method.model, last["model"], f"task {done - 1} checkpoint")
            method.load_state_dict(torch.load(s.task_dir / f"method_task_{done - 1}.pth", map_location="cpu",
                                              weights_only=True))
            log.info("resuming after task %d", done - 1)
    if "pretrained" not in results:
        results["pretrained"] = pretrained_accuracies(method.model, data, tasks, s)
    for task in tasks[len(results["tasks"]):]:
        entry = run_task(method, data, task, s, run_log)
        results["tasks"].append(entry)
        write_json(results_path, results)
        log.info("task %d: Acc_f %.2f  Acc_r %.2f  H %.2f  (%.0f s)", task.index, entry["acc_f"], entry["acc_r"],
                 entry["h_mean"], entry["wall_time_s"])
    return results


def pretrained_accuracies(model: nn.Module, data, tasks: List, s: RunSettings) -> Dict[str, List[Dict]]:
    """The starting model's accuracy on every task's class sets (the tables' 'Pre-train' row), both conventions."""
    counts = evaluate(model, data.test, torch.arange(len(data.test)), s.test_batch_size, s.device, s.amp)
    sets = lambda t: {"acc_r": t.remain, "acc_f": t.forget, "acc_o": t.old, "acc_m": t.missing}  # noqa: E731
    return {c: [{k: counts.accuracy(v, c) for k, v in sets(t).items()} for t in tasks] for c in ("original", "plain")}


def write_json(path: Path, content: Dict) -> None:
    """Atomic JSON write: a crash mid-write never corrupts the finished tasks' results."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content, indent=2))
    os.replace(tmp, path)


def pretrain(model: nn.Module, data, s: RunSettings, run_log, checkpoint_path: Path) -> Dict[str, object]:
    """Supervised training on all classes; keeps the epoch with the best validation accuracy (original convention).

    Returns the selected epoch, its validation accuracy and the test accuracy overall and per class.
    """
    o = s.optim
    optimizer = create_optimizer_v2(model, opt=o.opt, lr=o.lr, weight_decay=o.weight_decay, eps=o.opt_eps)
    scheduler = CosineLRScheduler(optimizer, t_initial=o.epochs, lr_min=o.min_lr, warmup_t=o.warmup_epochs,
                                  warmup_lr_init=o.warmup_lr)
    loader = BatchLoader(data.train, data.train_idx, s.batch_size, shuffle=True, seed=s.seed, tag="pretrain")
    every_class = range(data.num_classes)
    best = {"val_acc": -1.0}
    for epoch in tqdm(range(o.epochs), desc="pre-training", unit="epoch", disable=None):
        scheduler.step(epoch)
        stats = train_supervised_epoch(model, loader, optimizer, s.device, s.amp, f"epoch {epoch}")
        val = evaluate(model, data.train, data.val_idx, s.test_batch_size, s.device, s.amp)
        val_acc = val.accuracy(every_class)
        run_log.write("pretrain", epoch, {**stats, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                                          "val_acc_plain": val.accuracy(every_class, "plain")})
        if val_acc > best["val_acc"]:
            best = {"epoch": epoch, "val_acc": val_acc}
            save_checkpoint(checkpoint_path, model=model.state_dict(), model_args=s.model_args, config=s.config,
                            epoch=epoch)
    load_model_weights(model, load_checkpoint(checkpoint_path)["model"])
    return {**best, **test_report(model, data, s)}


def test_report(model: nn.Module, data, s: RunSettings) -> Dict[str, object]:
    """Test accuracy overall and per class (keyed by class folder name), in both conventions."""
    counts = evaluate(model, data.test, torch.arange(len(data.test)), s.test_batch_size, s.device, s.amp)
    report: Dict[str, object] = {}
    for convention in ("original", "plain"):
        report[f"test_acc_{convention}"] = counts.accuracy(range(data.num_classes), convention)
        report[f"per_class_{convention}"] = {name: counts.accuracy([c], convention)
                                             for c, name in enumerate(data.test.classes)}
    return report
