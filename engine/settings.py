"""The run-level settings that pre-training and the forgetting task loop share (built from flags in run_setup.py)."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import torch

from engine.optim import OptimConfig


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
    steps_per_task: Optional[int] = None
    model_args: Dict[str, object] = field(default_factory=dict)
    config: Dict[str, object] = field(default_factory=dict)

    @property
    def task_dir(self) -> Path:
        return self.outdir / "task-level"
