"""The oracle of the audits, a model that never saw the forgotten classes, and the gaps to it (audited minus oracle).
``--audit_oracle`` names an ``oracle`` folder (train_oracle.py: the true reference) or a finished Retrain run of the
same plan (weak at a small budget: its low numbers also reflect poor features); a stored audit made alike is reused."""
import logging
from pathlib import Path
from typing import Callable

from audit.relearn import BUDGETS
from data.task_plan import Task
from util.errors import UserError
from util.files import read_json
from util.table import dig

log = logging.getLogger(__name__)

# Every oracle must have read the same data and carved the same validation split as the audited run (the split seed
# names the pre-trained model it descends from).
SAME_DATA = ("data_mode", "data_root", "synthetic_seed", "val_ratio", "validation_seed")
# The subsets the audits draw members and forget images from; a Retrain oracle trained on them, so they must match.
SAME_SUBSETS = ("seed", "data_ratio", "few_shot", "few_shot_num")
KINDS = ("oracle", "retrain")
NUMBERS = ("membership", "probe", "verification", "relearn")
# The single-number gaps: (name in 'gap', path in an audit).
GAPS = (("mia", ("membership", "classifier", "member_rate")), ("knn_acc_f", ("probe", "acc_f")),
        ("tar_f", ("verification", "forget", "tar")))


def check_oracle(results: dict, oracle_dir: Path, config: dict, task: Task) -> None:
    """Refuses a folder that is no oracle, used other data or subsets, or forgot other classes in ``task``."""
    kind = results.get("method")
    if kind not in KINDS:
        raise UserError(f"--audit_oracle {oracle_dir} is a {kind} run; pass a folder made by train_oracle.py or a "
                        f"Retrain run")
    keys = SAME_DATA + (SAME_SUBSETS if kind == "retrain" else ())
    differing = [k for k in keys if results.get("config", {}).get(k) != config.get(k)]
    if differing:
        raise UserError(f"--audit_oracle {oracle_dir} was made with other {', '.join(differing)} than the audited "
                        f"run; build the oracle of this run's plan (train_oracle.py --run_dir)")
    plan = {p["task"]: p for p in results.get("plan", [])}.get(task.index)
    if plan is not None and (plan["remain"] != task.remain or plan["forget"] != task.forget):
        raise UserError(f"--audit_oracle {oracle_dir} forgot other classes in task {task.index} than the audited run")


def oracle_audit(oracle_dir: Path, task: Task, record: dict, config: dict,
                 compute: Callable[[Path], dict]) -> dict | None:
    """The oracle's audit of ``task``: stored with the same ``record``, else ``compute``d; None if it is unfinished."""
    results_path = oracle_dir / "results.json"
    if not results_path.is_file():
        raise UserError(f"--audit_oracle {oracle_dir} holds no results.json; pass a folder made by train_oracle.py "
                        f"or a finished Retrain run")
    results = read_json(results_path)
    check_oracle(results, oracle_dir, config, task)
    stored = next((t.get("audit") for t in results.get("tasks", []) if t["task"] == task.index), None)
    same_subsets = all(results["config"].get(k) == config.get(k) for k in SAME_SUBSETS)
    if stored is not None and stored.get("settings") == record and same_subsets:
        return stored
    checkpoint = oracle_dir / "task-level" / f"Backbone_task_{task.index}.pth"
    if checkpoint.is_file():
        return compute(checkpoint)
    log.warning("oracle %s has not finished task %d (%s is missing): no oracle numbers for it", oracle_dir,
                task.index, checkpoint)
    return None


def difference(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or theirs is None else ours - theirs


def with_oracle(audit: dict, oracle: dict | None, oracle_dir: Path) -> dict:
    """``audit`` with the oracle's numbers ('oracle') and gaps, ours minus its ('gap', per relearn budget {k: gap})."""
    plain = {k: v for k, v in audit.items() if k not in ("oracle", "gap")}
    if oracle is None:
        return plain
    gap = {b: {k: audit["relearn"][b][k] - oracle["relearn"][b][k] for k in audit["relearn"][b]} for b in BUDGETS}
    gap.update({name: difference(dig(audit, path), dig(oracle, path)) for name, path in GAPS})
    return {**plain, "oracle": {"run": str(oracle_dir), **{k: oracle[k] for k in NUMBERS}}, "gap": gap}
