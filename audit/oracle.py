"""The oracle of the audits: a model trained without the forgotten classes, audited alike, and the gap to it.

The oracle is a finished Retrain run of the same plan (``--audit_oracle RUN_DIR``): its task i model never saw the
classes forgotten up to task i. Its numbers say what "never learned" looks like on every audit; the relearn gap,
recovery of the audited model minus recovery of the oracle at the same k and budget, says how much of the recovery
comes from residual knowledge rather than from learning the classes anew. Its audit is read from its results.json
when it was made with the same settings, and otherwise computed from its saved task checkpoint.
"""
import logging
from pathlib import Path
from typing import Callable, Dict, Optional

from audit.relearn import BUDGETS
from data.task_plan import Task
from util.errors import UserError
from util.files import read_json

log = logging.getLogger(__name__)

# The oracle must have drawn the same subsets from the same data: its members are the images it trained on.
MUST_MATCH = ("data_mode", "data_root", "synthetic_seed", "seed", "val_ratio", "data_ratio", "few_shot",
              "few_shot_num")
NUMBERS = ("membership", "probe", "verification", "relearn")


def check_oracle(results: Dict, oracle_dir: Path, config: Dict, task: Task) -> None:
    """Refuses an oracle run that used other data or subsets, or forgot other classes in ``task``."""
    theirs = results.get("config", {})
    differing = [k for k in MUST_MATCH if theirs.get(k) != config.get(k)]
    if differing:
        raise UserError(f"--audit_oracle {oracle_dir} was run with other {', '.join(differing)} than the audited run; "
                        f"pass a Retrain run of the same data and protocol")
    plan = {p["task"]: p for p in results.get("plan", [])}.get(task.index)
    if plan is not None and (plan["remain"] != task.remain or plan["forget"] != task.forget):
        raise UserError(f"--audit_oracle {oracle_dir} forgot other classes in task {task.index} than the audited run")


def oracle_audit(oracle_dir: Path, task: Task, record: Dict, config: Dict,
                 compute: Callable[[Path], Dict]) -> Optional[Dict]:
    """The oracle's audit of ``task``: stored in its results.json with the same settings ``record``, else computed
    by ``compute`` from its task checkpoint; None (with a warning) when it has not finished that task."""
    results_path = oracle_dir / "results.json"
    if not results_path.is_file():
        raise UserError(f"--audit_oracle {oracle_dir} holds no results.json; pass a finished Retrain run folder")
    results = read_json(results_path)
    check_oracle(results, oracle_dir, config, task)
    stored = next((t.get("audit") for t in results.get("tasks", []) if t["task"] == task.index), None)
    if stored is not None and stored.get("settings") == record:
        return stored
    checkpoint = oracle_dir / "task-level" / f"Backbone_task_{task.index}.pth"
    if checkpoint.is_file():
        return compute(checkpoint)
    log.warning("oracle %s has not finished task %d (%s is missing): no oracle numbers for it", oracle_dir,
                task.index, checkpoint)
    return None


def with_oracle(audit: Dict, oracle: Optional[Dict], oracle_dir: Path) -> Dict:
    """``audit`` with the oracle's numbers under 'oracle' and the relearn gap under 'gap' ({budget: {k: ours -
    oracle}}, accuracy points); without an oracle, ``audit`` without either."""
    plain = {k: v for k, v in audit.items() if k not in ("oracle", "gap")}
    if oracle is None:
        return plain
    gap = {b: {k: audit["relearn"][b][k] - oracle["relearn"][b][k] for k in audit["relearn"][b]} for b in BUDGETS}
    return {**plain, "oracle": {"run": str(oracle_dir), **{k: oracle[k] for k in NUMBERS}}, "gap": gap}
