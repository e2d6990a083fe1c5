"""Audits of a finished run from its saved task checkpoints (``test_forget_cl.py --audit``), without retraining."""
import logging
from pathlib import Path

from audit.run import attach_oracle, audit_checkpoint
from data.task_plan import Task
from engine.forgetting import task_subsets
from engine.settings import RunSettings
from util.files import read_json, write_json

log = logging.getLogger(__name__)


def audit_finished_run(run_dir: Path, results: dict, data, tasks: list[Task], settings: RunSettings,
                       out_dir: Path) -> Path:
    """Audits each task of ``results`` (keeping stored ones of the same settings) with the oracle's into ``out_dir``."""
    record = settings.audit.record(settings.seed)
    for entry in results["tasks"]:
        task = tasks[entry["task"]]
        remain_idx, forget_idx = task_subsets(data, task, settings)
        audit = entry.get("audit")
        if audit is None or audit.get("settings") != record:
            audit = audit_checkpoint(run_dir / "task-level" / f"Backbone_task_{task.index}.pth", data, task,
                                     remain_idx, forget_idx, settings)
            log.info("%s task %d: audit in %.1f s", run_dir, task.index, audit["seconds"])
        entry["audit"] = attach_oracle(audit, data, task, remain_idx, forget_idx, settings)
    saved = read_json(run_dir / "results.json")  # the run's own results with only the audits added
    for entry, audited in zip(saved["tasks"], results["tasks"]):
        entry["audit"] = audited["audit"]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", saved)
    return out_dir
