"""The run-level settings that pre-training and the forgetting task loop share (built from flags in run_setup.py)."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine.optim import OptimConfig

if TYPE_CHECKING:  # the audits sit above the engine; the task loop only passes their settings on
    from audit.settings import AuditSettings


@dataclass
class RunSettings:
    """Everything the loops need besides the method, the data and the task plan."""

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
    steps_per_task: int | None = None
    early_stop: int | None = None  # evaluations without a better H after which a task may end
    early_stop_growth: float = 0.0  # the patience also grows to this fraction of the task's evaluations so far
    early_stop_goal: str = "method"  # 'none': the selection H alone ends a task, not the method's forgetting goal
    no_retain: bool = False  # --no_retain: methods train on forget images only (no remain training images)
    audit: "AuditSettings | None" = None  # --audit: audit every task's final model (audit/run.py)
    model_args: dict[str, object] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)

    @property
    def task_dir(self) -> Path:
        return self.outdir / "task-level"
