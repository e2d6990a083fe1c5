"""Data-parallel training across the processes of a ``torchrun`` launch (nccl on CUDA, gloo on the CPU); without
torchrun every function is a no-op. ``average_gradients`` averages the gradients after each backward instead of a
``DistributedDataParallel`` wrapper: the methods train different parameter sets (LoRA injected after loading, LIRF's
deposit, teachers, SCRUB's several updates), and one all-reduce where every method steps serves them all."""
import os
import re
from typing import Callable, Iterable, TypeVar

import torch
import torch.distributed as dist

from util.errors import UserError

T = TypeVar("T")


class CollectiveFailed(RuntimeError):
    """A collective failed, usually because another process of the launch stopped; printed as one line."""


def init_distributed(device: torch.device) -> torch.device:
    """Joins torchrun's process group (with several processes); returns this process's device (CUDA: its local GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"torchrun started local rank {local_rank} but this node has "
                            f"{torch.cuda.device_count()} CUDA device(s): pass --nproc_per_node at most that")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    except (RuntimeError, ValueError) as err:
        raise UserError(f"cannot join the torchrun launch ({_first_line(err)}); check --rdzv_endpoint and that "
                        f"every node can reach it") from None
    return device


def close_distributed() -> None:
    """Leaves the process group (at the end of an entry point); a no-op when none was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main_process() -> bool:
    """True for the one process that writes files, logs and prints (rank 0, or a single-process run)."""
    return rank() == 0


def process_tag() -> str:
    """'' on the main process, '[rank R] ' on the others: the prefix of their error lines."""
    return "" if is_main_process() else f"[rank {rank()}] "


def progress_off() -> bool | None:
    """tqdm's ``disable``: None (tqdm's own rule, off when not a terminal) on the main process, True elsewhere."""
    return None if is_main_process() else True


def shard() -> tuple[int, int]:
    """(rank, world size): which part of every training batch this process takes (``BatchLoader(shard=...)``)."""
    return rank(), world_size()


def shard_indices(indices: torch.Tensor) -> torch.Tensor:
    """This process's strided share of an evaluation pass (about as many images of each class per process)."""
    return indices[rank()::world_size()]


def _first_line(err: BaseException) -> str:
    """The gist of a backend error: its first sentence, without gloo's leading '[source file:line]'."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(err).strip())
    return (text.splitlines() or [type(err).__name__])[0].split(". ")[0]


def _collective(operation: Callable, *args, **kwargs) -> None:
    """Runs a torch.distributed operation; its failure (a stopped peer resets the connection) becomes one line."""
    try:
        operation(*args, **kwargs)
    except RuntimeError as err:
        raise CollectiveFailed(f"{operation.__name__} across the torchrun processes failed ({_first_line(err)}); "
                               f"usually another process stopped: see its error") from None


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the processes, on its device: a split evaluation's counts sum to one process's."""
    if world_size() == 1:
        return tensor
    # nccl reduces CUDA tensors only; gloo reduces CPU tensors.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    summed = tensor.to(device, copy=True)
    _collective(dist.all_reduce, summed)
    return summed.to(tensor.device)


def mean_over_processes(values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the processes (every process passes the same keys): epoch loss means for the log."""
    if world_size() == 1 or not values:
        return values
    # The keys come in the same order on every process: they run the same code.
    summed = all_reduce_sum(torch.tensor(list(values.values()), dtype=torch.float64))
    return {k: v / world_size() for k, v in zip(values, summed.tolist())}


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replaces each gradient by its mean over the processes (the global batch's, for equal parts) in one all-reduce of
    a flat buffer; a gradient that is None (on every process) stays None: the optimizer skips it as in one process."""
    grads = [p.grad for p in params if p.grad is not None] if world_size() > 1 else []
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    _collective(dist.all_reduce, flat)
    flat.div_(world_size())
    for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
        grad.copy_(part.view_as(grad))


@torch.no_grad()
def broadcast_from_main(tensors: Iterable[torch.Tensor]) -> None:
    """Copies rank 0's values into every process's ``tensors`` (in place), as DDP does when it wraps a model."""
    if world_size() == 1:
        return
    for tensor in tensors:
        _collective(dist.broadcast, tensor.data, src=0)


def seed_per_process() -> None:
    """Offsets the seed by the rank, so that dropout masks differ between the parts of a batch; call it after the
    processes drew what they share (weights, LoRA initialisation)."""
    if world_size() > 1:
        torch.manual_seed(torch.initial_seed() + 7919 * (rank() + 1))


def barrier() -> None:
    if world_size() > 1:
        _collective(dist.barrier)


def in_turn(fn: Callable[[], T]) -> T:
    """Runs ``fn`` on rank 0, then on each node's first process, then on the rest: what the first creates (the synthetic
    faces in --cache_dir) the later ones find complete, whether or not the nodes share a file system."""
    if world_size() == 1:
        return fn()
    stage = 0 if rank() == 0 else 1 if int(os.environ.get("LOCAL_RANK", "0")) == 0 else 2
    result = None
    for turn in range(3):
        if turn == stage:
            result = fn()
        barrier()
    return result
