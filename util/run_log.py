"""Where a run's numbers go: one JSON line per record in ``log.jsonl`` and, optionally, TensorBoard scalars (imported
lazily: without it the run goes on with a warning)."""
import json
import logging
import math
from pathlib import Path

from util.distributed import is_main_process
from util.files import atomic_write

log = logging.getLogger(__name__)


def setup_logging(level: str = "INFO", outdir: Path | None = None) -> None:
    """Messages to stderr and ``outdir/run.log``; under torchrun other processes than the main one log errors only."""
    if not is_main_process():
        level, outdir = "ERROR", None
    handlers = [logging.StreamHandler()]
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(outdir / "run.log"))
        # A record run.log cannot take (disk full) is dropped: logging would print a traceback per record, burying
        # the one error line that the failing write of a result gives.
        logging.raiseExceptions = False
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=handlers, force=True,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _task_of(line: bytes) -> float:
    """The task a log line belongs to (-1: none); a line cut short by a kill (or garbled: not UTF-8, not JSON) counts
    as the interrupted task's."""
    try:
        record = json.loads(line)
    except ValueError:  # UnicodeDecodeError included
        return math.inf
    return record.get("task", -1) if isinstance(record, dict) else math.inf


class RunLog:
    """Appends records to ``log.jsonl``, numeric fields mirrored to TensorBoard as ``prefix/name``; main process only"""

    def __init__(self, outdir: Path | None, tensorboard: bool = True):
        outdir = outdir if is_main_process() else None
        self.path = None if outdir is None else Path(outdir) / "log.jsonl"
        self.writer = None
        if outdir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(Path(outdir) / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed: no TensorBoard events for this run")

    def write(self, prefix: str, step: int, values: dict[str, object], task: int | None = None) -> None:
        """Appends one record; ``task`` tags the records of a forgetting task (see ``drop_tasks_from``)."""
        if self.path is not None:
            tag = {} if task is None else {"task": task}
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"kind": prefix, "step": step, **tag, **values}) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def drop_tasks_from(self, first: int) -> None:
        """Removes the records of tasks ``first`` and later (a task cut short before a resume), atomically."""
        if self.path is None or not self.path.exists():
            return
        kept = [line for line in self.path.read_bytes().splitlines() if _task_of(line) < first]
        atomic_write(self.path, lambda fh: fh.write(b"".join(line + b"\n" for line in kept)))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
