"""Task plans: what each task remembers, forgets, forgot before and misses (Sec. 3.3). With F = ``num_first_cls``,
P = ``per_forget_cls`` and the class ``order``, task i forgets ``order[F-i*P : F-i*P+P]``, keeps ``order[:F-i*P]`` and
has already forgotten ``order[F-i*P+P:]``; single-step is one task. O missing classes (remembered, no training data)
are ``order[:O]`` in the continual layout and ``order[F-O:F]`` in the single-step one, as in the original scripts."""
from dataclasses import dataclass
from typing import Sequence

from data.class_names import class_indices
from util.errors import UserError


@dataclass(frozen=True)
class Task:
    """Global class indices of one task. ``remain`` has training data; ``missing`` is remembered without data."""

    index: int
    remain: list[int]
    forget: list[int]
    old: list[int]
    missing: list[int]


def plan_tasks(order: list[int], num_first_cls: int, per_forget_cls: int, num_tasks: int,
               open_cls_num: int = 0, single_step_layout: bool = False) -> list[Task]:
    """Builds the task list; raises UserError when the numbers do not fit the class order."""
    f, p, o, n = num_first_cls, per_forget_cls, open_cls_num, len(order)
    if min(p, num_tasks) < 1 or o < 0:
        raise UserError("--per_forget_cls and --num_tasks must be at least 1 and --open_cls_num at least 0")
    if f + p > n:
        raise UserError(f"--num_of_first_cls {f} + --per_forget_cls {p} exceeds the {n} classes")
    last_remain = f - (num_tasks - 1) * p
    if last_remain - o < 1 or (single_step_layout and num_tasks > 1):
        raise UserError(f"{num_tasks} tasks of {p} classes (plus {o} missing) leave no remembered class out of "
                        f"the first {f}; lower --num_tasks or --per_forget_cls")
    tasks = []
    for i in range(num_tasks):
        end = f - i * p
        remain, missing = (order[:end - o], order[end - o:end]) if single_step_layout else (order[o:end], order[:o])
        old = order[end + p:] if i > 0 else []
        tasks.append(Task(i, list(remain), list(order[end:end + p]), list(old), list(missing)))
    return tasks


def named_tasks(classes: list[str], forget: Sequence[Sequence[str]], missing: Sequence[str], flag: str) -> list[Task]:
    """Task i forgets the classes named in ``forget[i]``, ``missing`` are remembered without data, the others not yet
    forgotten are remembered; a bad name, an empty task or no remembered class is a UserError naming ``flag``."""
    named = class_indices([name for task in forget for name in task] + list(missing), classes, flag)
    missing_idx = named[len(named) - len(missing):]
    tasks, start = [], 0
    for i, names in enumerate(forget):
        if not names:
            raise UserError(f"{flag}: task {i} names no class to forget")
        old, current = named[:start], named[start:start + len(names)]
        start += len(names)
        gone = set(named[:start] + missing_idx)
        remain = [c for c in range(len(classes)) if c not in gone]
        if not remain:
            raise UserError(f"{flag}: task {i} leaves no remembered class with training data; forget fewer classes")
        tasks.append(Task(i, remain, current, old, list(missing_idx)))
    return tasks
