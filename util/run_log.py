"""Where a run's numbers go: one JSON line per record in ``log.jsonl`` and, optionally, TensorBoard scalars.

TensorBoard is imported lazily: when it is missing the run goes on with a warning.
"""
import json
import logging
import math
from pathlib import Path
from typing import Dict, Optional

log = logging.getLogger(__name__)


def setup_logging(level: str = "INFO", outdir: Optional[Path] = None) -> None:
    """Messages to stderr and, with an outdir, to ``outdir/run.log``."""
    handlers = [logging.StreamHandler()]
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(outdir / "run.log"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=handlers, force=True,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


class RunLog:
    """Appends records to ``log.jsonl`` and mirrors numeric fields to TensorBoard as ``prefix/name``."""

    def __init__(self, outdir: Optional[Path], tensorboard: bool = True):
        self.path = None if outdir is None else Path(outdir) / "log.jsonl"
        self.writer = None
        if outdir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(Path(outdir) / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed: no TensorBoard events for this run")

    def write(self, prefix: str, step: int, values: Dict[str, object]) -> None:
        if self.path is not None:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"kind": prefix, "step": step, **values}) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
