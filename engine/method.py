"""The ``Method`` contract every forgetting method implements (gs_lora.py, baselines/), its registry, and the
helpers only methods use. The task loop (engine/forgetting.py) only calls the hooks documented on the class."""
import copy
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import torch
import torch.nn as nn

from data.folders import BatchLoader, ImageTensors
from data.task_plan import Task
from engine.optim import OptimConfig, create_optimizer_and_scheduler
from util.device import autocast
from util.distributed import average_gradients, shard
from util.registry import Registry

METHODS = Registry("method")
Batch = tuple[torch.Tensor, torch.Tensor]


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
    steps: int | None = None  # --steps_per_task: the task ends after this many optimizer steps
    no_retain: bool = False  # --no_retain: remain_idx is empty and the loaders hold no remain side
    artifacts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def loader(self, indices: torch.Tensor, tag: str, shuffle: bool = True, batch_size: int | None = None,
               sharded: bool = False) -> BatchLoader:
        """Batches of ``train[indices]``; ``sharded``: this process's part of every batch under torchrun (the training
        loaders), else every process sees all (a method's own passes, such as EWC's importance, then agree)."""
        return BatchLoader(self.train, indices, batch_size or self.batch_size, shuffle=shuffle, seed=self.seed,
                           tag=f"task{self.task.index}-{tag}", shard=shard() if sharded else (0, 1))

    def to_device(self, batch: Batch | None) -> Batch | None:
        """Moves an (images, labels) batch to the device; None (a step without that side) stays None."""
        return None if batch is None else tuple(t.to(self.device, non_blocking=True) for t in batch)


@dataclass
class StepInfo:
    task: int
    epoch: int
    iteration: int


class Option(NamedTuple):
    """A constructor keyword's flag (``from_args`` passes ``args.<flag>``), default, help and argparse keywords."""

    flag: str
    default: object
    help: str | None = None  # with one, add_arguments adds the flag (typed by the default or kw); else another group
    kw: dict[str, object] | None = None


class Method:
    """Base class of every forgetting method; the hook contract the engine relies on.

    Per task: ``begin_task``, ``build_optimizer``, then per epoch ``batches`` and a ``training_step`` per (remain,
    forget) pair (returning the named losses with 'total'), then ``end_task`` once the selected weights are restored
    and tested; its dict goes into the task's results. An overridden ``training_step`` calls ``average_gradients``
    between backward and every optimizer step (torchrun)."""

    name = "method"
    presets: dict[str, str] = {}  # flag strings per setting ('paper', 'cpu', 'smoke'), for scripts/method_flags.py
    # Why the method cannot run with --no_retain (a parser error), or None: it can, its steps get (None, forget) pairs.
    no_retain_refusal: str | None = "it does not declare a loss for forget images alone"
    trains_lora = False  # True: it honours --lora_pos and --grouping (GS-LoRA's ablation switches)
    options: dict[str, Option] = {}  # the constructor's keywords, each set as the attribute of its name
    group = ""  # the title of the argument group of the flags its options add

    def __init__(self, model: nn.Module, **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments: {', '.join(unknown)}")
        self.model = model
        self.optimizer: torch.optim.Optimizer | None = None
        self.ctx: TaskContext | None = None
        for key, option in self.options.items():  # a copied default: a list one is never shared between instances
            setattr(self, key, options[key] if key in options else copy.copy(option.default))

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Adds the flags of the options with a help text that the parent class lacks (an argument group)."""
        inherited = getattr(cls.__base__, "options", {})
        own = [o for key, o in cls.options.items() if o.help and inherited.get(key) != o]
        g = parser.add_argument_group(cls.group) if own else None
        for o in own:
            kind = ({"action": "store_true"} if isinstance(o.default, bool) else  # a fresh list for each parser:
                    {"type": float, "nargs": "*", "default": []} if isinstance(o.default, list) else
                    {"type": type(o.default)})
            g.add_argument(f"--{o.flag}", **{"default": o.default, **kind, **(o.kw or {})}, help=o.help)

    @classmethod
    def check_arguments(cls, parser, args) -> None:
        """Rejects bad flag combinations with ``parser.error``."""

    @classmethod
    def from_args(cls, model: nn.Module, args) -> "Method":
        """The adapter from the parsed flags to the constructor's keywords (``options``)."""
        return cls(model, **{key: getattr(args, o.flag) for key, o in cls.options.items()})

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What is trained, counted and snapshot for selection; default: the backbone, head frozen (reference 1.7)."""
        return list(self.model.backbone.parameters())

    def optimized_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters plus any module a method trains outside the model (LIRF's deposit)."""
        return self.trainable_parameters()

    def begin_task(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        trainable = {id(p) for p in self.trainable_parameters()}  # requires_grad set to match
        for p in self.model.parameters():
            p.requires_grad_(id(p) in trainable)

    def autocast(self):
        """bf16 autocast on CUDA (unless disabled) for the forward passes of a step."""
        return autocast(self.ctx.device, self.ctx.amp)

    def build_optimizer(self, ctx: TaskContext):
        """A fresh optimizer and per-epoch cosine schedule from the shared factory (engine/optim.py)."""
        self.optimizer, scheduler = create_optimizer_and_scheduler(self.optimized_parameters(), ctx.optim,
                                                                   ctx.epochs, ctx.steps)
        return self.optimizer, scheduler

    def num_epochs(self, ctx: TaskContext) -> int:
        """Epochs of the task's loop (SCRUB counts its own super-epochs)."""
        return ctx.epochs

    def batches(self, ctx: TaskContext, loaders: dict[str, Iterator]) -> Iterator[tuple[Batch, Batch]]:
        """One epoch of (remain, forget) pairs: a pass over the remain data, forget batches cycled; with
        ``--no_retain`` one pass over the forget data, each pair (None, forget)."""
        if ctx.no_retain:
            yield from ((None, forget) for forget in loaders["forget"])
        else:
            yield from ((remain, next(loaders["forget_cycle"])) for remain in loaders["remain"])

    def compute_loss(self, remain: Batch, forget: Batch, step: StepInfo) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def training_step(self, remain: Batch, forget: Batch, step: StepInfo) -> dict[str, torch.Tensor]:
        with self.autocast():
            losses = self.compute_loss(remain, forget, step)
        self.optimizer.zero_grad(set_to_none=True)
        self.backward(losses)
        average_gradients(self.optimized_parameters())  # torchrun: every process takes the same step
        self.optimizer.step()
        return losses

    def backward(self, losses: dict[str, torch.Tensor]) -> None:
        """Fills the gradients of the step's losses (default: of their total)."""
        losses["total"].backward()

    def forget_goal_met(self, losses: dict[str, float]) -> bool:
        """Whether the forgetting target is reached (for ``--early_stop``); without one, selection H alone decides."""
        return True

    def end_task(self, ctx: TaskContext) -> dict[str, object]:
        return {}

    def state_dict(self) -> dict[str, object]:
        """What must survive between tasks, for a resume."""
        return {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restores what ``state_dict`` saved."""

    def snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.optimized_parameters()]

    @torch.no_grad()
    def restore(self, snapshot: list[torch.Tensor]) -> None:
        for p, saved in zip(self.optimized_parameters(), snapshot):
            p.copy_(saved)


def wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly drawn label different from each true one (reproducible; under torchrun each process takes its
    own row of a (world size, B) draw of the shared generator)."""
    rank, world = shard()
    offsets = torch.randint(1, num_classes, (world, *labels.shape), generator=generator)[rank].to(labels.device)
    return (labels + offsets) % num_classes


def forward_pair(model: nn.Module, remain: Batch | None, forget: Batch) -> tuple[torch.Tensor | None, ...]:
    """(logits_r, logits_f, emb_r, emb_f) from one forward pass over both batches (dropout is per sample, so this
    equals two passes); without a remain batch None for the remain outputs."""
    if remain is None:
        logits, emb = model(*forget)
        return None, logits, None, emb
    n = remain[0].shape[0]
    logits, emb = model(torch.cat([remain[0], forget[0]]), torch.cat([remain[1], forget[1]]))
    return logits[:n], logits[n:], emb[:n], emb[n:]


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off: a teacher for distillation-based methods."""
    return copy.deepcopy(model).eval().requires_grad_(False)
