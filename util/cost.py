"""Cost accounting: trainable parameters, wall time and peak memory of a task (on the CPU the peak resident set, VmHWM,
which Linux lets us reset between tasks by writing 5 to /proc/self/clear_refs; elsewhere the peak so far)."""
import contextlib
import resource
import sys
import time
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn


def trainable_summary(trainable: Iterable[nn.Parameter], model: nn.Module) -> dict[str, float]:
    """Trainable parameter count and its percentage of the model's (frozen included) parameters."""
    n_trainable, n_total = (sum(p.numel() for p in params) for params in (trainable, model.parameters()))
    return {"trainable_params": n_trainable, "trainable_ratio": 100.0 * n_trainable / n_total}


def _cpu_peak_mb() -> float:
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 20


class CostMeter:
    """Measures wall time and peak memory from ``start()`` to ``stop()``."""

    def __init__(self, device: torch.device):
        self.device, self.started = device, 0.0

    def start(self) -> "CostMeter":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")
        self.started = time.perf_counter()
        return self

    def stop(self) -> dict[str, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        else:
            peak = _cpu_peak_mb()
        return {"wall_time_s": time.perf_counter() - self.started, "peak_memory_mb": peak,
                "peak_memory_kind": "cuda_allocated" if self.device.type == "cuda" else "process_rss"}
